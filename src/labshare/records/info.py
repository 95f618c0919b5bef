"""`labshare info --json`: what labshare on the server tells the laptop, the one message between hosts.

The laptop and the server may run different labshare versions, so the
laptop reads this only through `ServerInfo.from_json(..., remote=True)`: an
older server's answer is read with defaults, and an answer it cannot read
is one sentence naming both versions and where to upgrade.  `connect` loads
this after its early ssh has started (connect/dial.py), so a dataclass is fine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from labshare.records import KnownServer
from labshare.records.base import Record


@dataclass(frozen=True)
class ServerStatus:
    """What `labshare status` shows of the member's server, and the first part of `ServerInfo`."""

    running: bool = False
    pid: int | None = None
    supervisor_pid: int | None = None
    mode: str | None = None
    socket: str | None = None
    port: int | None = None
    root_dir: str | None = None
    started_at: str | None = None
    restarts: int = 0
    kernels: int | None = None
    connections: int | None = None
    last_activity: str | None = None
    socket_fallback: bool = False
    limits: dict[str, object] = field(default_factory=dict)
    limits_enforced: bool = True
    keep_outputs: bool | None = None
    surviving_kernels: tuple[dict[str, Any], ...] = ()
    log_file: str = ""
    notes: tuple[str, ...] = ()
    hub_url: str | None = None  # the member's server runs under JupyterHub, reached there


@dataclass(frozen=True)
class ServerInfo(ServerStatus, Record):
    """Everything `status` shows, plus the token, user and host that `connect` needs."""

    VERSION: ClassVar[int] = 2

    token: str | None = None
    user: str = ""
    host: str = ""
    labshare: str | None = (
        None  # the envelope's: the server's version, None from one older than records
    )

    @classmethod
    def remembered(cls, known: KnownServer) -> ServerInfo:
        """What the laptop's memory says of a server it connected to: running, where, the token."""
        return cls(
            running=True,
            mode=known.mode,
            socket=known.socket,
            socket_fallback=bool(known.socket_fallback),
            token=known.token,
            user=known.user or "",
            host=known.host or "",
            root_dir=known.root_dir,
        )
