"""Site policy (`/etc/labshare/config.toml`, root's) and a member's own config, validated.

Configuration is data: `load_site` and `load_user` parse and check files,
`policy_for` is a pure function from that data and a user to the effective
policy.  Every problem is one line naming the file and the key, and unknown
keys are errors, because a typo in a limit must not pass as "no limit".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labshare.config.gpus import GPU_KEYS, GpuSettings, gpu_count, parse_gpus
from labshare.config.hub import HUB_KEYS, HubSettings, SlurmSettings, parse_hub
from labshare.config.values import (
    MEMORY_SIZE,
    ConfigError,
    duration,
    fail,
    read_toml,
    size_bytes,
    table,
    unknown,
)

__all__ = ["GPU_KEYS", "HUB_KEYS", "ConfigError", "GpuSettings", "HubSettings", "SlurmSettings", "duration", "size_bytes"]

SERVER_KEYS = {
    "mode",
    "root_dir",
    "cull_idle_kernels_after",
    "cull_busy_kernels",
    "shutdown_idle_server_after",
    "keep_outputs",
}
MEMBER_KEYS = {"gpus", "max_gpus", "memory_max", "cpus"}
OVERRIDABLE = {"mode", "root_dir", "cull_idle_kernels_after", "shutdown_idle_server_after", "keep_outputs"}
DEFAULT_CLAIMS_DIR = "/var/lib/labshare/ports"


@dataclass(frozen=True)
class Limits:
    gpus: tuple[int, ...] | None = None  # the only cards (by NVML index) this member may use
    max_gpus: int | None = None  # how many cards this member may hold at once, with leases
    memory_max: str | None = None
    cpus: float | None = None


@dataclass(frozen=True)
class Site:
    """The admin's policy, as parsed; empty when there is no site config."""

    path: Path | None = None
    server: Mapping[str, Any] = field(default_factory=dict)
    port_range: tuple[int, int] | None = None
    port_assignments: Mapping[str, int] = field(default_factory=dict)
    claims_dir: Path = Path(DEFAULT_CLAIMS_DIR)
    users: Mapping[str, Limits] = field(default_factory=dict)
    groups: Mapping[str, Limits] = field(default_factory=dict)
    admins: tuple[str, ...] = ()
    member_may_override: frozenset[str] = frozenset(OVERRIDABLE)
    hub: HubSettings = HubSettings()
    gpus: GpuSettings = GpuSettings()


@dataclass(frozen=True)
class Policy:
    """What one member's server gets: site defaults, their groups, their own table, their overrides."""

    user: str
    mode: str = "socket"
    root_dir: str = "~/projects"
    cull_idle_kernels_after: float | None = None
    cull_busy_kernels: bool = False
    shutdown_idle_server_after: float | None = None
    keep_outputs: bool = True
    port: int | None = None
    limits: Limits = Limits()
    sources: Mapping[str, str] = field(default_factory=dict)


def _server(path: Path, table: Mapping[str, Any], where: str) -> dict[str, Any]:
    unknown(path, where, table, SERVER_KEYS)
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{where}.{key}"
        if key == "mode":
            if value not in ("socket", "tcp"):
                raise fail(path, name, f"must be \"socket\" or \"tcp\", got {value!r}")
            out[key] = value
        elif key == "root_dir":
            if not isinstance(value, str) or not value:
                raise fail(path, name, "must be a folder path such as \"~/projects\"")
            out[key] = value
        elif key in ("cull_busy_kernels", "keep_outputs"):
            if not isinstance(value, bool):
                raise fail(path, name, "must be true or false")
            out[key] = value
        else:
            out[key] = duration(path, name, value)
    return out


def _limits(path: Path, where: str, table: object) -> Limits:
    if not isinstance(table, Mapping):
        raise fail(path, where, "must be a table")
    unknown(path, where, table, MEMBER_KEYS)
    gpus = table.get("gpus")
    if gpus is not None:
        if not isinstance(gpus, list) or not all(isinstance(g, int) and not isinstance(g, bool) and g >= 0 for g in gpus):
            raise fail(path, f"{where}.gpus", "must be a list of GPU indices such as [0, 1]")
        gpus = tuple(gpus)
    memory = table.get("memory_max")
    if memory is not None and (not isinstance(memory, str) or not MEMORY_SIZE.match(memory)):
        raise fail(path, f"{where}.memory_max", f"must be a size such as \"64G\", got {memory!r}")
    max_gpus = table.get("max_gpus")
    if max_gpus is not None:
        max_gpus = gpu_count(path, f"{where}.max_gpus", max_gpus)
    cpus = table.get("cpus")
    if cpus is not None and (isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or cpus <= 0):
        raise fail(path, f"{where}.cpus", f"must be a positive number of CPUs, got {cpus!r}")
    return Limits(gpus=gpus, max_gpus=max_gpus, memory_max=memory, cpus=float(cpus) if cpus is not None else None)


def _port_range(path: Path, value: object) -> tuple[int, int]:
    m = re.match(r"^\s*(\d+)\s*-\s*(\d+)\s*$", value) if isinstance(value, str) else None
    if not m:
        raise fail(path, "ports.range", f"must look like \"10000-10999\", got {value!r}")
    low, high = int(m.group(1)), int(m.group(2))
    if not 1024 <= low <= high <= 65535:
        raise fail(path, "ports.range", f"must lie within 1024-65535 with the low end first, got {value!r}")
    return low, high


def load_site(path: Path) -> Site:
    data = read_toml(path)
    if not data:
        return Site(path=path if path.exists() else None)
    unknown(path, "", data, {"server", "ports", "users", "groups", "admin", "member", "hub", "gpus"})
    server = _server(path, table(path, data, "server"), "server")

    ports = dict(table(path, data, "ports"))
    port_range = _port_range(path, ports.pop("range")) if "range" in ports else None
    claims_dir = ports.pop("claims_dir", DEFAULT_CLAIMS_DIR)
    if not isinstance(claims_dir, str) or not claims_dir.startswith("/"):
        raise fail(path, "ports.claims_dir", "must be an absolute path")
    assignments: dict[str, int] = {}
    owner_of: dict[int, str] = {}
    for user, port in ports.items():
        if isinstance(port, bool) or not isinstance(port, int) or not 1024 <= port <= 65535:
            raise fail(path, f"ports.{user}", f"must be a port number between 1024 and 65535, got {port!r}")
        if port in owner_of:
            raise fail(path, f"ports.{user}", f"port {port} is already assigned to {owner_of[port]}")
        owner_of[port] = user
        assignments[user] = port

    users = {name: _limits(path, f"users.{name}", t) for name, t in table(path, data, "users").items()}
    groups = {name: _limits(path, f"groups.{name}", t) for name, t in table(path, data, "groups").items()}

    admin = table(path, data, "admin")
    unknown(path, "admin", admin, {"users"})
    admins = admin.get("users", [])
    if not isinstance(admins, list) or not all(isinstance(a, str) for a in admins):
        raise fail(path, "admin.users", "must be a list of user names")

    member = table(path, data, "member")
    unknown(path, "member", member, {"may_override"})
    may = member.get("may_override", sorted(OVERRIDABLE))
    if not isinstance(may, list) or not set(may) <= OVERRIDABLE:
        raise fail(path, "member.may_override", f"must be a list drawn from {', '.join(sorted(OVERRIDABLE))}")

    hub = parse_hub(path, table(path, data, "hub"))
    gpus = parse_gpus(path, table(path, data, "gpus"))
    if gpus.leased:
        for kind, tables in (("users", users), ("groups", groups)):
            for name, limits in tables.items():
                _check_per_kernel(path, f"{kind}.{name}", gpus, limits)
    return Site(
        path=path,
        server=server,
        port_range=port_range,
        port_assignments=assignments,
        claims_dir=Path(claims_dir),
        users=users,
        groups=groups,
        admins=tuple(admins),
        member_may_override=frozenset(may),
        hub=hub,
        gpus=gpus,
    )


def _check_per_kernel(path: Path, where: str, gpus: GpuSettings, limits: Limits) -> None:
    """A kernel asking for more cards than its member may ever hold would never start: say so now."""
    caps = [n for n in (None if limits.gpus is None else len(limits.gpus), limits.max_gpus) if n is not None]
    if caps and gpus.per_kernel > min(caps):
        raise fail(path, "gpus.per_kernel", f"is {gpus.per_kernel}, but {where} may use only {min(caps)} GPU(s); "
                   f"lower per_kernel or give {where} more cards")


def load_user(path: Path, site: Site) -> dict[str, Any]:
    """A member's `[server]` overrides; keys the admin did not allow are refused by name."""
    data = read_toml(path)
    if not data:
        return {}
    unknown(path, "", data, {"server", "hosts"})
    server = _server(path, table(path, data, "server"), "server")
    for key in server:
        if key not in site.member_may_override:
            where = site.path or "the site config"
            raise fail(path, f"server.{key}", f"the admin does not let members change this (see {where})")
    return server


def _merge(base: Limits, top: Limits) -> Limits:
    return Limits(
        gpus=top.gpus if top.gpus is not None else base.gpus,
        max_gpus=top.max_gpus if top.max_gpus is not None else base.max_gpus,
        memory_max=top.memory_max or base.memory_max,
        cpus=top.cpus if top.cpus is not None else base.cpus,
    )


def policy_for(site: Site, user: str, groups: list[str], own: Mapping[str, Any] | None = None) -> Policy:
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
    return Policy(
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


def effective(site_path: Path, user_path: Path, user: str) -> tuple[Site, Policy]:
    """Load the site and the member's own config and resolve this member's policy."""
    site = load_site(site_path)
    own = load_user(user_path, site)
    return site, policy_for(site, user, groups_of(user), own)
