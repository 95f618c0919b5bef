"""The laptop's per-host settings, from `$XDG_CONFIG_HOME/labshare/config.toml`.

Some servers install labshare where no lookup would find it (a shared
`/opt/labshare/bin`, a module system); one line per host fixes that:

    [hosts.gpu1]
    labshare = "/opt/labshare/bin/labshare"
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labshare.config import load_member, schema


@dataclass(frozen=True)
class HostSettings:
    """What the laptop config says about one host; empty when it says nothing."""

    labshare: str | None = schema.default("hosts.NAME", "labshare")
    local_port: int | None = schema.default("hosts.NAME", "local_port")


def host_of(destination: str) -> str:
    """The host in an ssh destination: what messages call it, and its `[hosts.NAME]` table.

    Everything after the last `@`, so `alice@gpu1` and `gpu1` are both gpu1
    and share one table; anything else ssh accepts (`ssh://`, a port, an
    IPv6 address) is left as typed.
    """
    return destination.rpartition("@")[2]


def load(config_file: Path, destination: str) -> HostSettings:
    """Settings for `destination`: `[hosts."user@host"]` first, then `[hosts.host]`.

    The member's whole file goes through the config's one loader and schema,
    so a key the laptop does not read is refused as on the server.
    """
    hosts = load_member(config_file).hosts
    return HostSettings(**hosts.get(destination, hosts.get(host_of(destination), {})))
