"""What `labshare admin check` says of the lab's channels: which exist, and who gets what on them.

Only root can read the channels file; for anyone else the plan says so and
names no URL.  URLs are shown in apprise's privacy form, tokens hidden.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from labshare.config import SiteNotify
from labshare.errors import LabshareError


@dataclass
class LabNotices:
    channels_file: str | None
    readable: bool  # False: not root, or the file is missing or unsafe; `problem` says which
    channels: list[str] = field(default_factory=list)
    spool_dir: str = ""
    spool_problem: str | None = None
    service_running: bool | None = None
    # member -> where their notices go: "alice@lab.example on mailto://…", "not addressed on …"
    members: dict[str, list[str]] = field(default_factory=dict)
    address: str = ""  # how every member is addressed, in words
    problem: str | None = None


def lab_plan(site: SiteNotify, users: list[str]) -> LabNotices | None:
    from labshare.notify import channels, install, service, spool

    if not site.lab_channels:
        return None
    if isinstance(site.address, str):
        rule = f"each member as {site.address}"
    elif site.address is not None:
        rule = f"the members of the address table ({len(site.address)}); no one else on URLs with {{address}}"
    else:
        rule = "each member by user name"
    plan = LabNotices(
        address=rule,
        channels_file=site.channels_file,
        readable=False,
        spool_dir=str(site.spool_dir),
        spool_problem=spool.problem(Path(site.spool_dir)),
        service_running=install.service_running(),
    )
    if os.geteuid() != 0:
        plan.problem = (
            f"only root can read {site.channels_file}; run `sudo labshare admin check` to see them"
        )
        return plan
    try:
        urls = service.read_channels(Path(str(site.channels_file)))
    except LabshareError as exc:
        plan.problem = exc.message
        return plan
    plan.readable = True
    plan.channels = [channels.redacted(url) for url in urls]
    for user in users:
        address = site.address_of(user)
        where = []
        for url in urls:
            target = service.addressed(url, address, user)
            shown = channels.redacted(url)
            if target is None:
                where.append(f"nothing on {shown} (no address for them)")
            else:
                where.append(f"{address or user} on {shown}")
        plan.members[user] = where
    return plan
