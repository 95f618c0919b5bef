"""Ask every server of a group at once, over the member's own ssh, each within a deadline.

One ssh call per server runs `labshare fleet --here --json` there (found as
`connect` finds labshare: connect/ssh.py's `remote_command`), through a
shared ssh master where the laptop's ssh can multiplex, so asking again
skips the handshake.  A server that does not finish ssh's handshake within
`HANDSHAKE_SECONDS` (the member's own `ConnectTimeout` wins), or does not
answer within the deadline, is shown as not answering and never holds up
the rest.  Every failure becomes a few words for the table (`timeout`,
`unreachable`, `auth`, `no labshare`, `too old`) and the sentence `connect`
would say.  Calls never prompt (`BatchMode`): eight password prompts at once
help nobody; a member logs in once with `ssh HOST` or an agent.

Laptop side: standard modules and connect's portable pieces only, so it
runs on Windows as `connect` does.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from labshare.connect import diagnose, hosts, tunnel
from labshare.connect import ssh as sshcmd
from labshare.connect.remote import failure_of, parse_json_output
from labshare.errors import AuthFailed, HostUnreachable, LabshareError
from labshare.install_hint import REMOTE_UPGRADE
from labshare.paths import Paths
from labshare.records import RecordError, TooNew
from labshare.records.fleet import HereAnswer

HANDSHAKE_SECONDS = 1.0
DEADLINE_SECONDS = 10.0
HERE = ["fleet", "--here", "--json"]
TOO_OLD_SIGNS = ("No such command 'fleet'", 'No such command "fleet"', "no such option: --here")


@dataclass(frozen=True)
class Reply:
    """One server's answer, or why there is none: `error` in a few words, `message` as a sentence."""

    host: str  # as the group names it
    answer: HereAnswer | None = None
    error: str | None = None
    message: str | None = None
    seconds: float = 0.0

    @property
    def reachable(self) -> bool:
        return self.answer is not None


def ask_all(
    paths: Paths,
    destinations: tuple[str, ...],
    *,
    deadline: float = DEADLINE_SECONDS,
    ssh_options: tuple[str, ...] = (),
) -> list[Reply]:
    """Every server's reply, in the group's order, all asked at once; never longer than `deadline` (+ε)."""
    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, len(destinations))) as pool:
        futures = [
            pool.submit(ask_one, paths, d, began + deadline, ssh_options) for d in destinations
        ]
        return [f.result() for f in futures]


def ask_one(
    paths: Paths, destination: str, until: float, ssh_options: tuple[str, ...] = ()
) -> Reply:
    began = time.monotonic()
    try:
        answer = _ask(paths, destination, until, ssh_options)
    except LabshareError as exc:
        return Reply(
            host=destination,
            error=_kind(exc),
            message=exc.message,
            seconds=round(time.monotonic() - began, 3),
        )
    return Reply(host=destination, answer=answer, seconds=round(time.monotonic() - began, 3))


class TooOld(LabshareError):
    """labshare on the server predates `fleet`."""


def _ask(paths: Paths, destination: str, until: float, ssh_options: tuple[str, ...]) -> HereAnswer:
    host = hosts.host_of(destination)
    target = sshcmd.Target(destination, ssh_options)
    config = sshcmd.effective_config(target, timeout=max(0.5, until - time.monotonic()))
    target = sshcmd.audible(target, config)
    settings = hosts.load(paths.user_config_file, destination)
    options = sshcmd.shared_master_options(paths, target, config)
    if config.get("connecttimeout", "none") in ("none", ""):
        options += ["-o", f"ConnectTimeout={HANDSHAKE_SECONDS:g}"]
    options += ["-o", "BatchMode=yes"]

    def run(args: list[str]) -> subprocess.CompletedProcess[str]:
        argv = [
            target.ssh,
            *target.option_args(),
            *options,
            "-T",
            "--",
            destination,
            sshcmd.remote_command(args, settings.labshare),
        ]
        left = until - time.monotonic()
        if left <= 0:
            raise tunnel.NoAnswer(f"The server {host} did not answer in time; try again.")
        try:
            done = tunnel.call(argv, left, host)
        except tunnel.NoAnswer:
            raise tunnel.NoAnswer(
                f"{host} did not answer within the deadline; check it with `labshare doctor {destination}`."
            ) from None
        if done.returncode == 255:
            raise diagnose.classify_ssh_failure(done.stderr, destination)
        if done.returncode == sshcmd.NOT_FOUND_CODE and sshcmd.NOT_FOUND_MARK in done.stderr:
            raise _missing(host, settings.labshare, paths.user_config_file)
        return done

    done = run(HERE)
    data = parse_json_output(done.stdout)
    said = done.stdout + done.stderr
    if any(sign in said for sign in TOO_OLD_SIGNS):
        raise _too_old(host, run)
    if data is None or "error" in data:
        reason, detail = failure_of(done)
        raise LabshareError(f"labshare on {host} could not answer: {reason}", detail=detail)
    try:
        return HereAnswer.from_json(data, f"`labshare fleet --here --json` on {host}", remote=True)
    except TooNew as exc:
        raise LabshareError(exc.message) from None
    except RecordError as exc:
        raise TooOld(exc.message) from None


def _too_old(host: str, run: Callable[[list[str]], subprocess.CompletedProcess[str]]) -> TooOld:
    """The sentence for a labshare without `fleet`, with its version when `--version` says it."""
    version = None
    try:
        done = run(["--version"])
        words = done.stdout.strip().split()
        version = words[-1] if words else None
    except LabshareError:
        pass
    return TooOld(
        f"labshare on {host} is too old ({version or 'an unknown version'}) to answer `fleet`; "
        f"upgrade with: {REMOTE_UPGRADE}."
    )


def _missing(host: str, where: str | None, config_file: Path) -> LabshareError:
    from labshare.install_hint import REMOTE_INSTALL

    if where:
        return LabshareError(
            f"labshare was not found at {where} on {host} (set in {config_file}); fix that path or install it there."
        )
    return LabshareError(f"labshare is not installed on {host}; {REMOTE_INSTALL}.")


def _kind(exc: LabshareError) -> str:
    """A few words for the table's column."""
    if isinstance(exc, tunnel.NoAnswer):
        return "timeout"
    if isinstance(exc, TooOld):
        return "too old"
    if isinstance(exc, AuthFailed):
        return "auth"
    if isinstance(exc, HostUnreachable):
        text = exc.message
        if "timed out" in text or "Operation timed out" in text:
            return "timeout"
        if "Could not resolve hostname" in text:
            return "unknown host"
        return "unreachable"
    if "not installed" in exc.message or "was not found at" in exc.message:
        return "no labshare"
    if "host key" in exc.message:
        return "host key"
    return "error"
