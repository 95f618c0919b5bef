"""The laptop's per-host settings, from `$XDG_CONFIG_HOME/labshare/config.toml`.

Some servers install labshare where no lookup would find it (a shared
`/opt/labshare/bin`, a module system); one line per host fixes that:

    [hosts.gpu1]
    labshare = "/opt/labshare/bin/labshare"
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from labshare.errors import LabshareError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

KNOWN_KEYS = {"labshare", "local_port"}


@dataclass(frozen=True)
class HostSettings:
    """What the laptop config says about one host; empty when it says nothing."""

    labshare: str | None = None
    local_port: int | None = None


def host_of(destination: str) -> str:
    """The host in an ssh destination: what messages call it, and its `[hosts.NAME]` table.

    Everything after the last `@`, so `alice@gpu1` and `gpu1` are both gpu1
    and share one table; anything else ssh accepts (`ssh://`, a port, an
    IPv6 address) is left as typed.
    """
    return destination.rpartition("@")[2]


def load(config_file: Path, destination: str) -> HostSettings:
    """Settings for `destination` (`[hosts."user@host"]` first, then `[hosts.host]`)."""
    try:
        raw = config_file.read_bytes()
    except FileNotFoundError:
        return HostSettings()
    except OSError as exc:
        raise LabshareError(f"Cannot read {config_file} ({exc.strerror}); fix its permissions.") from exc
    try:
        data = tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise LabshareError(f"{config_file} is not valid TOML ({exc}); fix or remove it.") from exc
    hosts = data.get("hosts", {})
    if not isinstance(hosts, dict):
        raise LabshareError(f"In {config_file}, `hosts` must be a table such as [hosts.gpu1].")
    table = hosts.get(destination, hosts.get(host_of(destination), {}))
    if not isinstance(table, dict):
        raise LabshareError(f"In {config_file}, [hosts.{host_of(destination)}] must be a table.")
    unknown = sorted(set(table) - KNOWN_KEYS)
    if unknown:
        raise LabshareError(
            f"In {config_file}, [hosts.{host_of(destination)}] has unknown keys {', '.join(unknown)}; "
            f"known keys are {', '.join(sorted(KNOWN_KEYS))}.")
    labshare = table.get("labshare")
    if labshare is not None and (not isinstance(labshare, str) or not labshare.strip()):
        raise LabshareError(f"In {config_file}, `labshare` for {host_of(destination)} must be a path string.")
    port = table.get("local_port")
    if port is not None and (not isinstance(port, int) or not 1 <= port <= 65535):
        raise LabshareError(f"In {config_file}, `local_port` for {host_of(destination)} must be a port number.")
    return HostSettings(labshare=labshare, local_port=port)
