"""Site policy (`/etc/labshare/config.toml`, root's) and a member's own config, validated.

Configuration is data: `load_site` and `load_user` parse and check files,
`policy_for` is a pure function from that data and a user to the effective
policy.  Every problem is one line naming the file and the key, and unknown
keys are errors, because a typo in a limit must not pass as "no limit".
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labshare.errors import LabshareError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SERVER_KEYS = {
    "mode",
    "root_dir",
    "cull_idle_kernels_after",
    "cull_busy_kernels",
    "shutdown_idle_server_after",
    "keep_outputs",
}
MEMBER_KEYS = {"gpus", "memory_max", "cpus"}
OVERRIDABLE = {"mode", "root_dir", "cull_idle_kernels_after", "shutdown_idle_server_after", "keep_outputs"}
DEFAULT_CLAIMS_DIR = "/var/lib/labshare/ports"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d)?\s*$")
_MEMORY = re.compile(r"^\d+(\.\d+)?[KMGT]?$")
_UNITS = {None: 1, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Limits:
    gpus: tuple[int, ...] | None = None
    memory_max: str | None = None
    cpus: float | None = None


@dataclass(frozen=True)
class SlurmSettings:
    """`[hub.slurm]`: what each member's job asks Slurm for (batchspawner's req_* values)."""

    partition: str | None = None
    runtime: str | None = None
    memory: str | None = None
    cpus: int | None = None
    gres: str | None = None
    account: str | None = None
    qos: str | None = None


@dataclass(frozen=True)
class HubSettings:
    """`[hub]`: where JupyterHub listens and how it treats idle servers, for `labshare hub-config`."""

    ip: str = "127.0.0.1"
    port: int = 8000
    authenticator: str = "pam"
    idle_timeout: float | None = None  # None: derived from [server]; 0: no culling
    prefix: str = "/opt/jupyterhub"
    slurm: SlurmSettings = SlurmSettings()


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


class ConfigError(LabshareError):
    pass


def _fail(path: Path, key: str, problem: str) -> ConfigError:
    return ConfigError(f"{path}: {key}: {problem}.")


def duration(path: Path, key: str, value: object) -> float | None:
    """Seconds from 3600, "90s", "30m", "12h" or "2d"; 0 means off."""
    if isinstance(value, bool):
        raise _fail(path, key, "expected a duration such as 3600 or \"12h\", got a boolean")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise _fail(path, key, f"expected a duration such as 3600 or \"12h\", got {value!r}")
    if seconds < 0:
        raise _fail(path, key, "a duration cannot be negative")
    return seconds or None


def _read(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except PermissionError:
        raise ConfigError(f"{path}: cannot be read (permission denied); it must be readable by all members.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: is not valid TOML ({exc}); fix the file.") from None


def _table(path: Path, data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise _fail(path, key, "must be a table")
    return value


def _unknown(path: Path, where: str, table: Mapping[str, Any], allowed: set[str]) -> None:
    for key in table:
        if key not in allowed:
            raise _fail(path, f"{where}.{key}" if where else key, f"unknown key (known: {', '.join(sorted(allowed))})")


def _server(path: Path, table: Mapping[str, Any], where: str) -> dict[str, Any]:
    _unknown(path, where, table, SERVER_KEYS)
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{where}.{key}"
        if key == "mode":
            if value not in ("socket", "tcp"):
                raise _fail(path, name, f"must be \"socket\" or \"tcp\", got {value!r}")
            out[key] = value
        elif key == "root_dir":
            if not isinstance(value, str) or not value:
                raise _fail(path, name, "must be a folder path such as \"~/projects\"")
            out[key] = value
        elif key in ("cull_busy_kernels", "keep_outputs"):
            if not isinstance(value, bool):
                raise _fail(path, name, "must be true or false")
            out[key] = value
        else:
            out[key] = duration(path, name, value)
    return out


def _limits(path: Path, where: str, table: object) -> Limits:
    if not isinstance(table, Mapping):
        raise _fail(path, where, "must be a table")
    _unknown(path, where, table, MEMBER_KEYS)
    gpus = table.get("gpus")
    if gpus is not None:
        if not isinstance(gpus, list) or not all(isinstance(g, int) and not isinstance(g, bool) and g >= 0 for g in gpus):
            raise _fail(path, f"{where}.gpus", "must be a list of GPU indices such as [0, 1]")
        gpus = tuple(gpus)
    memory = table.get("memory_max")
    if memory is not None and (not isinstance(memory, str) or not _MEMORY.match(memory)):
        raise _fail(path, f"{where}.memory_max", f"must be a size such as \"64G\", got {memory!r}")
    cpus = table.get("cpus")
    if cpus is not None and (isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or cpus <= 0):
        raise _fail(path, f"{where}.cpus", f"must be a positive number of CPUs, got {cpus!r}")
    return Limits(gpus=gpus, memory_max=memory, cpus=float(cpus) if cpus is not None else None)


def _port_range(path: Path, value: object) -> tuple[int, int]:
    m = re.match(r"^\s*(\d+)\s*-\s*(\d+)\s*$", value) if isinstance(value, str) else None
    if not m:
        raise _fail(path, "ports.range", f"must look like \"10000-10999\", got {value!r}")
    low, high = int(m.group(1)), int(m.group(2))
    if not 1024 <= low <= high <= 65535:
        raise _fail(path, "ports.range", f"must lie within 1024-65535 with the low end first, got {value!r}")
    return low, high


HUB_KEYS = {"ip", "port", "authenticator", "idle_timeout", "prefix", "slurm"}
_SLURM_TEXT = {"partition", "runtime", "memory", "gres", "account", "qos"}
_IP = re.compile(r"^(\d{1,3}(\.\d{1,3}){3}|[0-9a-fA-F:]+)$")


def _hub(path: Path, table: Mapping[str, Any]) -> HubSettings:
    _unknown(path, "hub", table, HUB_KEYS)
    out: dict[str, Any] = {}
    for key in ("ip", "authenticator", "prefix"):
        if key in table:
            value = table[key]
            if not isinstance(value, str) or not value.strip():
                raise _fail(path, f"hub.{key}", f"must be a non-empty string, got {value!r}")
            out[key] = value
    if "ip" in out and not _IP.match(out["ip"]):
        raise _fail(path, "hub.ip", f"must be an IP address such as \"127.0.0.1\", got {out['ip']!r}")
    if "prefix" in out and not out["prefix"].startswith("/"):
        raise _fail(path, "hub.prefix", "must be an absolute path such as \"/opt/jupyterhub\"")
    if "port" in table:
        port = table["port"]
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise _fail(path, "hub.port", f"must be a port number between 1 and 65535, got {port!r}")
        out["port"] = port
    if "idle_timeout" in table:
        out["idle_timeout"] = duration(path, "hub.idle_timeout", table["idle_timeout"]) or 0.0
    slurm = _table(path, table, "slurm")
    _unknown(path, "hub.slurm", slurm, _SLURM_TEXT | {"cpus"})
    req: dict[str, Any] = {}
    for key, value in slurm.items():
        if key == "cpus":
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise _fail(path, "hub.slurm.cpus", f"must be a positive whole number of CPUs, got {value!r}")
        elif key == "memory":
            if not isinstance(value, str) or not _MEMORY.match(value):
                raise _fail(path, "hub.slurm.memory", f"must be a size such as \"64G\", got {value!r}")
        elif not isinstance(value, str) or not value.strip():
            raise _fail(path, f"hub.slurm.{key}", f"must be a non-empty string, got {value!r}")
        req[key] = value
    return HubSettings(**out, slurm=SlurmSettings(**req))


def load_site(path: Path) -> Site:
    data = _read(path)
    if not data:
        return Site(path=path if path.exists() else None)
    _unknown(path, "", data, {"server", "ports", "users", "groups", "admin", "member", "hub"})
    server = _server(path, _table(path, data, "server"), "server")

    ports = dict(_table(path, data, "ports"))
    port_range = _port_range(path, ports.pop("range")) if "range" in ports else None
    claims_dir = ports.pop("claims_dir", DEFAULT_CLAIMS_DIR)
    if not isinstance(claims_dir, str) or not claims_dir.startswith("/"):
        raise _fail(path, "ports.claims_dir", "must be an absolute path")
    assignments: dict[str, int] = {}
    owner_of: dict[int, str] = {}
    for user, port in ports.items():
        if isinstance(port, bool) or not isinstance(port, int) or not 1024 <= port <= 65535:
            raise _fail(path, f"ports.{user}", f"must be a port number between 1024 and 65535, got {port!r}")
        if port in owner_of:
            raise _fail(path, f"ports.{user}", f"port {port} is already assigned to {owner_of[port]}")
        owner_of[port] = user
        assignments[user] = port

    users = {name: _limits(path, f"users.{name}", t) for name, t in _table(path, data, "users").items()}
    groups = {name: _limits(path, f"groups.{name}", t) for name, t in _table(path, data, "groups").items()}

    admin = _table(path, data, "admin")
    _unknown(path, "admin", admin, {"users"})
    admins = admin.get("users", [])
    if not isinstance(admins, list) or not all(isinstance(a, str) for a in admins):
        raise _fail(path, "admin.users", "must be a list of user names")

    member = _table(path, data, "member")
    _unknown(path, "member", member, {"may_override"})
    may = member.get("may_override", sorted(OVERRIDABLE))
    if not isinstance(may, list) or not set(may) <= OVERRIDABLE:
        raise _fail(path, "member.may_override", f"must be a list drawn from {', '.join(sorted(OVERRIDABLE))}")

    hub = _hub(path, _table(path, data, "hub"))
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
    )


def load_user(path: Path, site: Site) -> dict[str, Any]:
    """A member's `[server]` overrides; keys the admin did not allow are refused by name."""
    data = _read(path)
    if not data:
        return {}
    _unknown(path, "", data, {"server", "hosts"})
    server = _server(path, _table(path, data, "server"), "server")
    for key in server:
        if key not in site.member_may_override:
            where = site.path or "the site config"
            raise _fail(path, f"server.{key}", f"the admin does not let members change this (see {where})")
    return server


def _merge(base: Limits, top: Limits) -> Limits:
    return Limits(
        gpus=top.gpus if top.gpus is not None else base.gpus,
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
