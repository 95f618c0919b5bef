"""The member's server as files in the state directory: its state, its launch spec, its surviving kernels.

The CLI writes the state and the launch spec and the supervisor reads them
(the state is written by both); the kernel manager inside Jupyter writes a
record per kernel and `status`, `stop` and `ps` read them.  These files
outlive an upgrade of labshare while the server runs, so an older format is
read, and a newer one is a sentence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from labshare.records.base import Record


@dataclass(frozen=True)
class ServerState(Record):
    """Who runs the member's JupyterLab and where it listens (server.json); format 1 called its version `schema`."""

    VERSION: ClassVar[int] = 2

    supervisor_pid: int
    supervisor_started: float
    mode: str
    root_dir: str
    socket: str | None
    port: int | None
    started_at: str
    pid: int | None = None
    pid_started: float | None = None
    restarts: int = 0
    socket_fallback: bool = False
    failed: str | None = None
    limits: dict[str, object] = field(default_factory=dict)
    limits_enforced: bool = True
    keep_outputs: bool | None = None
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class LaunchSpec(Record):
    """What the supervisor needs to (re)start Jupyter (launch.json); it holds no secret."""

    VERSION: ClassVar[int] = 2

    argv: tuple[str, ...]
    cwd: str
    log_file: str
    runtime_dir: str
    socket: str | None


@dataclass(frozen=True)
class KernelRecord(Record):
    """A kernel that outlives its server: enough to re-adopt it (its connection info holds its HMAC key)."""

    VERSION: ClassVar[int] = 2

    kernel_id: str
    pid: int
    kernel_name: str = ""
    connection_file: str = ""
    # Jupyter's ports, key and transport
    connection_info: dict[str, Any] = field(default_factory=dict)
    pgid: int | None = None
    started: float | None = None
    cwd: str = ""
    owner_pid: int | None = None
    owner_started: float | None = None
    survived: int = 0


@dataclass(frozen=True)
class HubServer(Record):
    """The member's server that JupyterHub spawned on this host (hub_server.json): `start`, `status` and
    a second spawn must know it runs, since it shares the member's kernels and leases."""

    VERSION: ClassVar[int] = 1

    pid: int  # the supervisor: the process the hub's spawner started and watches
    started: float | None
    host: str
    url: str  # where the member reaches it through the hub
    service_url: str = ""  # where the hub's proxy reaches it
    job_id: str | None = None  # the Slurm job it runs in
    jupyter_pid: int | None = None
    jupyter_started: float | None = None
    restarts: int = 0  # crashes of Jupyter the supervisor restarted
