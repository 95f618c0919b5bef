"""`doctor`'s notices checks: is the member's channel reachable, is the spool safe, does root's service run.

A check never sends a notice (`labshare notify test` does that, on request):
it dials the channel's server where it has one (a webhook, a self-hosted
ntfy, an SMTP server), reads the sender's last failure, and looks at the
spool's owner and mode, which are what keep members' notices apart.
"""

from __future__ import annotations

import os
import stat

from labshare.doctor import FAIL, OK, WARN, Check
from labshare.errors import LabshareError
from labshare.paths import Paths


def checks(paths: Paths) -> list[Check]:
    from labshare.notify import events, install, spool
    from labshare.notify.queue import channel_tally

    try:
        member, site = events.settings(paths)
    except LabshareError as exc:
        return [Check("notices", FAIL, exc.message, "fix the file it names")]
    if not (member.url or site.lab_channels):
        return []  # nothing to check: no channel of theirs, none of the lab's
    out: list[Check] = []
    if member.url:
        out.append(_own_channel(paths, member.url))
        mode = stat.S_IMODE(paths.user_config_file.stat().st_mode)
        if mode & 0o077:
            out.append(
                Check(
                    "notices-config",
                    FAIL,
                    f"{paths.user_config_file} holds your channel's URL (a secret) but has mode {mode:o}",
                    f"chmod 600 {paths.user_config_file}",
                )
            )
        tally = channel_tally(events.outbox(paths).tally(), "own")
        if tally.streak:
            out.append(
                Check(
                    "notices-delivery",
                    WARN,
                    f"the last {tally.streak} tries to your channel failed: {tally.last_error}",
                    "check the URL (`labshare notify status`), then `labshare notify test`",
                )
            )
    if site.lab_channels:
        why = spool.problem(site.spool_dir)
        out.append(
            Check("notices-spool", FAIL, why, "ask an admin to fix the spool as said")
            if why
            else Check(
                "notices-spool", OK, f"the notices spool {site.spool_dir} is root's, mode 1733"
            )
        )
        if os.geteuid() == 0:
            out += _lab_channels(site.channels_file or "")
        running = install.service_running()
        if running is False:
            out.append(
                Check(
                    "notices-service",
                    FAIL,
                    f"the lab's notices service ({install.UNIT}) is not running: the lab's channels get nothing",
                    f"ask an admin to run `sudo systemctl enable --now {install.UNIT}`",
                )
            )
        elif running:
            out.append(Check("notices-service", OK, f"{install.UNIT} is running"))
        else:
            out.append(
                Check(
                    "notices-service",
                    WARN,
                    "systemd does not run this host, so whether the lab's notices service runs is unknown",
                    "ask an admin that `labshare admin notices serve` runs as root",
                )
            )
    return out


def _own_channel(paths: Paths, url: str) -> Check:
    from labshare.notify import channels

    shown = channels.redacted(url)
    if not channels.valid(url):
        return Check(
            "notices-channel",
            FAIL,
            f"your channel {shown} is not an apprise URL labshare can send to",
            "set it again: `labshare notify set URL`",
        )
    problem = channels.reachable(url)
    if problem:
        return Check(
            "notices-channel",
            FAIL,
            f"your channel is unreachable: {problem}",
            "check the URL's host and port, or that the server is up; then `labshare notify test`",
        )
    return Check("notices-channel", OK, f"your channel {shown} answers")


def _lab_channels(channels_file: str) -> list[Check]:
    """As root: the channels file is safe, and each lab channel's server answers (nothing is sent)."""
    from pathlib import Path

    from labshare.notify import channels, service

    try:
        urls = service.read_channels(Path(channels_file))
    except LabshareError as exc:
        return [Check("notices-lab-channels", FAIL, exc.message, "fix the file as said")]
    problems = [f"{channels.redacted(u)}: {why}" for u in urls if (why := channels.reachable(u))]
    if problems:
        return [
            Check(
                "notices-lab-channels",
                FAIL,
                "unreachable: " + "; ".join(problems),
                f"check those URLs in {channels_file}, or that their servers are up",
            )
        ]
    return [Check("notices-lab-channels", OK, f"{len(urls)} lab channel(s) in {channels_file}")]
