"""Site policy (`/etc/labshare/config.toml`, root's) and a member's own config, validated.

Configuration is data: `load_site` and `load_user` parse and check files,
`policy_for` is a pure function from that data and a user to the effective
policy.  Every problem is one line naming the file and the key, and unknown
keys are errors, because a typo in a limit must not pass as "no limit".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labshare.config import schema
from labshare.config.gpu_settings import GpuSettings, parse_gpus
from labshare.config.hub import HubSettings, SlurmSettings, parse_hub
from labshare.config.notify_settings import (
    MemberNotify,
    SiteNotify,
    parse_member_notify,
    parse_site_notify,
)
from labshare.config.values import ConfigError, fail, read_toml, size_bytes, table

__all__ = ["ConfigError", "GpuSettings", "HubSettings", "SlurmSettings", "size_bytes"]

_PORT_SETTINGS = set(schema.keys("ports")) - {"USER"}  # any other key of [ports] is a user name


@dataclass(frozen=True)
class Limits:
    # the only cards (NVML indexes)
    gpus: tuple[int, ...] | None = schema.default("users.NAME", "gpus")
    # cards held at once, with leases
    max_gpus: int | None = schema.default("users.NAME", "max_gpus")
    memory_max: str | None = schema.default("users.NAME", "memory_max")
    cpus: float | None = schema.default("users.NAME", "cpus")


@dataclass(frozen=True)
class Site:
    """The admin's policy, as parsed; empty when there is no site config."""

    path: Path | None = None
    server: Mapping[str, Any] = field(default_factory=dict)
    port_range: tuple[int, int] | None = None
    port_assignments: Mapping[str, int] = field(default_factory=dict)
    claims_dir: Path = schema.default("ports", "claims_dir")
    users: Mapping[str, Limits] = field(default_factory=dict)
    groups: Mapping[str, Limits] = field(default_factory=dict)
    admins: tuple[str, ...] = schema.default("admin", "users")
    member_may_override: frozenset[str] = schema.default("member", "may_override")
    hub: HubSettings = HubSettings()
    gpus: GpuSettings = GpuSettings()
    notify: SiteNotify = field(default_factory=SiteNotify)


@dataclass(frozen=True)
class ServerPolicy:
    """What one member's server gets: site defaults, their groups, their own table, their overrides."""

    user: str
    mode: str = schema.default("server", "mode")
    root_dir: str = schema.default("server", "root_dir")
    cull_idle_kernels_after: float | None = schema.default("server", "cull_idle_kernels_after")
    cull_busy_kernels: bool = schema.default("server", "cull_busy_kernels")
    shutdown_idle_server_after: float | None = schema.default(
        "server", "shutdown_idle_server_after"
    )
    keep_outputs: bool = schema.default("server", "keep_outputs")
    port: int | None = None
    limits: Limits = Limits()
    sources: Mapping[str, str] = field(default_factory=dict)


def _limits(path: Path, where: str, table: object) -> Limits:
    return Limits(**schema.parse(path, "users.NAME", table, where))


def _ports(path: Path, table: Mapping[str, Any]) -> dict[str, int]:
    """`[ports]`: every key but the schema's own is a user name with a fixed port, each port once."""
    fixed = schema.key("ports", "USER")
    assignments: dict[str, int] = {}
    owner_of: dict[int, str] = {}
    for user, value in table.items():
        if user in _PORT_SETTINGS:
            continue
        port = schema.check(path, "ports", dataclasses.replace(fixed, name=user), value)
        if port in owner_of:
            raise fail(
                path, f"ports.{user}", f"port {port} is already assigned to {owner_of[port]}"
            )
        owner_of[port] = user
        assignments[user] = port
    return assignments


def load_site(path: Path) -> Site:
    data = read_toml(path)
    if not data:
        return Site(path=path if path.exists() else None)
    schema.unknown(path, "", data, schema.SITE_TABLES)
    server = schema.parse(path, "server", table(path, data, "server"))
    ports = table(path, data, "ports")
    settings = schema.parse(path, "ports", {k: v for k, v in ports.items() if k in _PORT_SETTINGS})
    users = {
        name: _limits(path, f"users.{name}", t) for name, t in table(path, data, "users").items()
    }
    groups = {
        name: _limits(path, f"groups.{name}", t) for name, t in table(path, data, "groups").items()
    }
    admin = schema.parse(path, "admin", table(path, data, "admin"))
    member = schema.parse(path, "member", table(path, data, "member"))
    hub = parse_hub(path, table(path, data, "hub"))
    gpus = parse_gpus(path, table(path, data, "gpus"))
    if gpus.leased:
        for kind, tables in (("users", users), ("groups", groups)):
            for name, limits in tables.items():
                _check_per_kernel(path, f"{kind}.{name}", gpus, limits)
    return Site(
        path=path,
        server=server,
        port_range=settings.get("range"),
        port_assignments=_ports(path, ports),
        claims_dir=settings.get("claims_dir", Site.claims_dir),
        users=users,
        groups=groups,
        admins=admin.get("users", Site.admins),
        member_may_override=member.get("may_override", Site.member_may_override),
        hub=hub,
        gpus=gpus,
        notify=parse_site_notify(path, table(path, data, "notify")),
    )


def _check_per_kernel(path: Path, where: str, gpus: GpuSettings, limits: Limits) -> None:
    """A kernel asking for more cards than its member may ever hold would never start: say so now."""
    caps = [
        n
        for n in (None if limits.gpus is None else len(limits.gpus), limits.max_gpus)
        if n is not None
    ]
    if caps and gpus.per_kernel > min(caps):
        raise fail(
            path,
            "gpus.per_kernel",
            f"is {gpus.per_kernel}, but {where} may use only {min(caps)} GPU(s); "
            f"lower per_kernel or give {where} more cards",
        )


@dataclass(frozen=True)
class MemberConfig:
    """A member's own config, checked whole wherever it is read.

    `[server]` is read on the server, `[hosts.NAME]` on the laptop; both go
    through the schema, so a typo is refused the same on either machine.
    """

    server: Mapping[str, Any] = field(default_factory=dict)
    hosts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    notify: MemberNotify = field(default_factory=MemberNotify)


def load_member(path: Path) -> MemberConfig:
    data = read_toml(path)
    schema.unknown(path, "", data, schema.MEMBER_TABLES)
    hosts = {
        name: schema.parse(path, "hosts.NAME", t, f"hosts.{name}")
        for name, t in table(path, data, "hosts").items()
    }
    return MemberConfig(
        server=schema.parse(path, "server", table(path, data, "server")),
        hosts=hosts,
        notify=parse_member_notify(path, table(path, data, "notify")),
    )


def load_user(path: Path, site: Site) -> dict[str, Any]:
    """A member's `[server]` overrides; keys the admin did not allow are refused by name."""
    server = dict(load_member(path).server)
    for key in server:
        if key not in site.member_may_override:
            where = site.path or "the site config"
            raise fail(
                path, f"server.{key}", f"the admin does not let members change this (see {where})"
            )
    return server


def _merge(base: Limits, top: Limits) -> Limits:
    return Limits(
        gpus=top.gpus if top.gpus is not None else base.gpus,
        max_gpus=top.max_gpus if top.max_gpus is not None else base.max_gpus,
        memory_max=top.memory_max or base.memory_max,
        cpus=top.cpus if top.cpus is not None else base.cpus,
    )


def policy_for(
    site: Site, user: str, groups: list[str], own: Mapping[str, Any] | None = None
) -> ServerPolicy:
    """The effective policy: defaults < site [server] < member's groups < [users.NAME] < own overrides."""
    settings: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, value in site.server.items():
        settings[key], sources[key] = value, "site"
    for key, value in (own or {}).items():
        settings[key], sources[key] = value, "user config"
    limits = Limits()
    for group in groups:
        if group in site.groups:
            limits = _merge(limits, site.groups[group])
    if user in site.users:
        limits = _merge(limits, site.users[user])
    return ServerPolicy(
        user=user,
        port=site.port_assignments.get(user),
        limits=limits,
        sources=sources,
        **settings,
    )


def groups_of(user: str) -> list[str]:
    import grp
    import pwd

    try:
        primary = pwd.getpwnam(user).pw_gid
    except KeyError:
        return []
    names = [g.gr_name for g in grp.getgrall() if user in g.gr_mem]
    try:
        names.insert(0, grp.getgrgid(primary).gr_name)
    except KeyError:
        pass
    return names


def members(site: Site) -> list[str]:
    """Known members: anyone with a `[users.NAME]` table or a port assignment, and the admins."""
    return sorted(set(site.users) | set(site.port_assignments) | set(site.admins))


def effective(site_path: Path, user_path: Path, user: str) -> tuple[Site, ServerPolicy]:
    """Load the site and the member's own config and resolve this member's policy."""
    site = load_site(site_path)
    own = load_user(user_path, site)
    return site, policy_for(site, user, groups_of(user), own)
