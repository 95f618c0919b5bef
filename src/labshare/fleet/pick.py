"""`labshare connect GROUP`: ask the group, choose a server, or say why none (with the table).

The connection itself is `connect HOST`'s own Session, given the chosen
host; this module only decides which, so `connect HOST` stays as it was.
"""

from __future__ import annotations

from dataclasses import dataclass

from labshare.errors import LabshareError
from labshare.fleet import ask, choose, group, report
from labshare.paths import Paths


@dataclass(frozen=True)
class Picked:
    group: group.Group
    choice: choose.Choice
    report: report.FleetReport


class NoRoom(choose.NoRoom):
    """`choose.NoRoom` with the table of the answers, for the command to show."""

    def __init__(self, message: str, table: report.FleetReport):
        super().__init__(message)
        self.table = table


def pick(
    paths: Paths,
    name: str,
    gpus: int,
    *,
    ssh_options: tuple[str, ...] = (),
    deadline: float = ask.DEADLINE_SECONDS,
) -> Picked:
    chosen = group.resolve(name, group.known(paths.site_config, paths.user_config_file))
    replies = ask.ask_all(paths, chosen.hosts, deadline=deadline, ssh_options=ssh_options)
    table = report.build(chosen.name, replies)
    try:
        choice = choose.choose(replies, gpus, chosen.name)
    except choose.NoRoom as exc:
        raise NoRoom(exc.message, table) from None
    return Picked(group=chosen, choice=choice, report=table)


def is_group(paths: Paths, name: str) -> bool:
    """Whether `connect NAME` means a group (the rule is group.is_group's)."""
    return group.is_group(name, group.known(paths.site_config, paths.user_config_file))


def last_choice(
    paths: Paths, name: str, host: str | None, ssh_options: tuple[str, ...] = ()
) -> str | None:
    """`host` (last time's choice for group `name`) when it is still in the group and the laptop
    remembers a JupyterLab running there; else None, and the group is asked."""
    from labshare.connect import known

    if host is None:
        return None
    try:
        hosts = group.resolve(name, group.known(paths.site_config, paths.user_config_file)).hosts
    except LabshareError:
        return None
    if host not in hosts or known.Memory(str(paths.state_root), host, ssh_options).load() is None:
        return None
    return host
