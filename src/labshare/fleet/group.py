"""Which servers a name means: a group from the configs, or a comma-separated list of hosts.

A group is a list of ssh destinations, exactly as `ssh` takes them (aliases
of `~/.ssh/config`, `user@host`), so ProxyJump and the rest apply as usual.
Where they come from:

- `lab`: the member's own `[lab] servers` (on the laptop), else the site
  config's `[lab] servers` (on a server, so a member logged in on one knows
  the others);
- any other name: the member's own `[server_groups] NAME = [...]`;
- `gpu1,gpu2`: those hosts, in that order (one host and a comma, `gpu1,`,
  is a group of one).

A name that is both a group and an ssh host is the group: groups are
written on purpose, and a host can always be named `user@host` instead,
which is never a group.  Pure: files in, a `Group` out (or one sentence).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labshare.config import schema
from labshare.config.values import read_toml, table
from labshare.errors import ExitCode, LabshareError

LAB = "lab"


@dataclass(frozen=True)
class Group:
    """A resolved group: its name as typed, its hosts in order, and where the list came from."""

    name: str
    hosts: tuple[str, ...]
    source: str  # "the command line", a config file's path


@dataclass(frozen=True)
class Known:
    """Every group the configs define, by name, with the file that defines it."""

    groups: dict[str, tuple[tuple[str, ...], str]]

    def names(self) -> list[str]:
        return sorted(self.groups)


def known(site_config: Path, member_config: Path) -> Known:
    """The groups the site config and the member's own config define (the member's `lab` wins)."""
    groups: dict[str, tuple[tuple[str, ...], str]] = {}
    site = _lab_servers(site_config)
    if site is not None:
        groups[LAB] = (site, str(site_config))
    data = read_toml(member_config)
    own = _lab_servers(member_config, data)
    if own is not None:
        groups[LAB] = (own, str(member_config))
    named = schema.key("server_groups", "NAME")
    for name, hosts in table(member_config, data, "server_groups").items():
        groups[name] = (
            schema.check(member_config, "server_groups", _named(named, name), hosts),
            str(member_config),
        )
    return Known(groups)


def site_lab_servers(site_config: Path) -> tuple[str, ...] | None:
    """The site config's `[lab] servers` (None when it names none): what `doctor GROUP` compares."""
    return _lab_servers(site_config)


def is_group(name: str, found: Known) -> bool:
    """Whether `connect NAME` means a group: a comma list, or a group a config defines (not `user@host`)."""
    if "@" in name:
        return False
    return "," in name or name in found.groups


def resolve(name: str | None, found: Known) -> Group:
    """The group `name` means (None: `lab`), or one sentence saying what is wrong and how to fix it."""
    name = name or LAB
    if "," in name:
        hosts = tuple(h.strip() for h in name.split(",") if h.strip())
        _check_hosts(name, hosts)
        return Group(name=name, hosts=_unique(hosts), source="the command line")
    if name not in found.groups:
        defined = found.names()
        listed = (
            f"the groups defined are {', '.join(defined)}" if defined else "no group is defined"
        )
        how = (
            'define it in your own config (`[server_groups] NAME = ["gpu1", "gpu2"]`, or '
            "`[lab] servers = [...]` for `lab`) or name hosts as a list, e.g. `gpu1,gpu2`"
        )
        raise LabshareError(
            f"No server group {name!r} ({listed}); {how}.", exit_code=ExitCode.USAGE
        )
    hosts, source = found.groups[name]
    if not hosts:
        raise LabshareError(
            f"The server group {name!r} in {source} lists no servers; add ssh host names to it.",
            exit_code=ExitCode.USAGE,
        )
    return Group(name=name, hosts=_unique(hosts), source=source)


def _check_hosts(name: str, hosts: tuple[str, ...]) -> None:
    if not hosts:
        raise LabshareError(
            f"{name!r} names no servers; list ssh host names separated by commas, e.g. `gpu1,gpu2`.",
            exit_code=ExitCode.USAGE,
        )
    for host in hosts:
        if any(c.isspace() for c in host) or host.startswith("-"):
            raise LabshareError(
                f"{host!r} in {name!r} is not an ssh host name; list names such as `gpu1,alice@gpu2`.",
                exit_code=ExitCode.USAGE,
            )


def _unique(hosts: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(hosts))


def _lab_servers(path: Path, data: dict[str, object] | None = None) -> tuple[str, ...] | None:
    data = read_toml(path) if data is None else data
    lab = schema.parse(path, LAB, table(path, data, LAB))
    servers = lab.get("servers")
    return None if servers is None else tuple(str(s) for s in servers)


def _named(key: schema.Key, name: str) -> schema.Key:
    """The `[server_groups] NAME` key as the file names it, so an error names the group."""
    from dataclasses import replace

    return replace(key, name=name)
