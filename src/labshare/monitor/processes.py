"""Every Jupyter server on this host, its kernels, and what they use: the snapshot `ps` and `top` show.

One pass over /proc (`sampling`), which every user may read, so `ps` needs
no secrets; `attribution` tells servers, kernels and what they started
apart; `discovery` asks the servers, in parallel, while CPU is measured;
this module puts the answers together.  Servers and kernels are both a
`Usage`, so the figures are named once, added up once and shown the same
way in the text table and in `--json`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labshare.gpus import leases as gpu_leases
from labshare.gpus.leases import Lease
from labshare.gpus.nvml import GpuDevice, GpuReader, GpuReading, read, read_nvml
from labshare.monitor import argv as cmd
from labshare.monitor import attribution, discovery, leased
from labshare.monitor.leased import LeasedCard, Unleased
from labshare.monitor.sampling import CPU_INTERVAL, CpuSampler, Proc, read_processes
from labshare.users import user_name


@dataclass(kw_only=True)
class Usage:
    """CPU, memory, GPU memory and GPUs of a kernel or server, counting every process it started."""

    cpu_percent: float = 0.0
    memory_bytes: int = 0
    # None where this host gives no GPU figures (no driver, no nvidia-ml-py).
    gpu_memory_bytes: int | None = None
    gpus: list[int] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        """The figures alone, to make a `Kernel` or `Server` that uses them."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(Usage)}

    @staticmethod
    def total(parts: Iterable[Usage]) -> Usage:
        items = list(parts)
        gpu = [p.gpu_memory_bytes for p in items]
        return Usage(
            cpu_percent=round(sum(p.cpu_percent for p in items), 1),
            memory_bytes=sum(p.memory_bytes for p in items),
            gpu_memory_bytes=None if None in gpu else sum(g or 0 for g in gpu),
            gpus=sorted({d for p in items for d in p.gpus}),
        )


@dataclass
class Kernel(Usage):
    """One kernel (with the processes it started), as `ps --json` shows it."""

    pid: int
    kernel_id: str | None
    name: str | None
    notebook: str | None
    execution_state: str | None = None
    started_at: str | None = None
    python: str | None = None
    server_restarts_survived: int | None = None
    last_activity: str | None = None  # Jupyter's, known where the notebook is (the owner, root)
    gpu_lease: list[LeasedCard] = field(default_factory=list)


@dataclass
class Server(Usage):
    """One Jupyter server; its figures include its kernels, `server_…` are the server's own."""

    user: str
    uid: int
    pid: int | None
    managed: bool
    kind: str
    mode: str | None
    port: int | None
    socket: str | None
    started_at: str | None
    uptime_seconds: int | None
    token_required: bool | None
    kernels: list[Kernel] = field(default_factory=list)
    supervisor_pid: int | None = None
    server_cpu_percent: float = 0.0
    server_memory_bytes: int = 0
    root_dir: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Snapshot:
    """Everything `ps` and `top` show: servers, and the GPUs (or why there are none)."""

    servers: list[Server]
    gpus: list[GpuDevice]
    gpu_unavailable: str | None
    all_users: bool
    user: str
    taken_at: str
    leases: list[Lease] = field(default_factory=list)  # everyone's, live and stale
    # in the scope of `servers`, or everyone's
    unleased: list[Unleased] = field(default_factory=list)
    leasing: bool = False  # whether the site gives GPUs by lease, so unleased processes matter


class _Meter:
    """Adds up what each role (a kernel, or a server itself) uses, over the processes charged to it."""

    def __init__(
        self, procs: dict[int, Proc], owners: dict[int, int], cpu: dict[int, float], gpu: GpuReading
    ):
        self.procs, self.cpu, self.unavailable = procs, cpu, gpu.unavailable is not None
        self.gpu_bytes, self.gpu_devices = gpu.memory_by_pid(), gpu.devices_by_pid()
        self.members: dict[int, list[int]] = {}
        for pid, role in owners.items():
            self.members.setdefault(role, []).append(pid)

    def usage(self, role: int | None) -> Usage:
        pids = self.members.get(role, []) if role is not None else []
        return Usage(
            cpu_percent=round(sum(self.cpu.get(p, 0.0) for p in pids), 1),
            memory_bytes=sum(self.procs[p].rss for p in pids),
            gpu_memory_bytes=None
            if self.unavailable
            else sum(self.gpu_bytes.get(p, 0) for p in pids),
            gpus=sorted({d for p in pids for d in self.gpu_devices.get(p, [])}),
        )


def _iso(created: float) -> str:
    return dt.datetime.fromtimestamp(created, dt.timezone.utc).isoformat(timespec="seconds")


class Scanner:
    """Takes snapshots; keeps CPU times between them, so `top` measures over its refresh period."""

    def __init__(
        self,
        *,
        all_users: bool = False,
        gpu: GpuReader = read_nvml,
        interval: float = CPU_INTERVAL,
        leases_dir: Path | None = None,
        leasing: bool = False,
        everyones_gpu_processes: bool = False,
    ):
        """`everyones_gpu_processes`: name every unleased GPU process even when `servers` are only yours."""
        self.all_users = all_users
        self.everyone_on_gpus = all_users or everyones_gpu_processes
        self.gpu = gpu
        self.leases_dir, self.leasing = leases_dir, leasing
        self.uid = os.getuid()
        self.privileged = os.geteuid() == 0
        self.sampler = CpuSampler(interval)

    def may_see_secrets(self, uid: int) -> bool:
        """Notebook paths need the owner's token: only the owner and root get them."""
        return self.privileged or uid == os.geteuid()

    def scan(self) -> Snapshot:
        began = time.monotonic()
        with ThreadPoolExecutor(max_workers=16) as pool:
            gpu_future = pool.submit(read, self.gpu)
            lease_future = (
                pool.submit(gpu_leases.leases, self.leases_dir) if self.leases_dir else None
            )
            procs = read_processes()
            found = attribution.find(procs, None if self.all_users else self.uid)
            owners = attribution.owners(procs, found)
            asks = [pool.submit(discovery.ask, f, self.may_see_secrets(f.uid)) for f in found]
            cpu = self.sampler.percent(procs, owners, began)
            answers = [ask.result() for ask in asks]
            gpu = gpu_future.result()
            held = lease_future.result() if lease_future else []
        meter = _Meter(procs, owners, cpu, gpu)
        live = [lease for lease in held if lease.live]
        unleased = leased.unleased(
            gpu.devices, procs, live, None if self.everyone_on_gpus else self.uid
        )
        servers = [_server(f, a, meter) for f, a in zip(found, answers, strict=True)]
        servers.sort(key=lambda s: (s.user, s.started_at or "", s.pid or 0))
        for kernel in (k for s in servers for k in s.kernels):
            kernel.gpu_lease = leased.cards_of(kernel.kernel_id, kernel.pid, live, gpu.devices)
        return Snapshot(
            servers=servers,
            gpus=gpu.devices,
            gpu_unavailable=gpu.unavailable,
            all_users=self.all_users,
            user=user_name(self.uid),
            taken_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            leases=held,
            unleased=unleased,
            leasing=self.leasing,
        )


def _kernel(proc: Proc, answer: discovery.Answer, meter: _Meter) -> Kernel:
    kid = cmd.kernel_id(cmd.connection_file(proc.argv))
    info = answer.kernel_info.get(kid or "", {})
    return Kernel(
        pid=proc.pid,
        kernel_id=kid,
        name=info.get("name"),
        notebook=answer.sessions.get(kid or ""),
        execution_state=info.get("execution_state"),
        started_at=_iso(proc.created),
        python=proc.argv[0] if proc.argv else None,
        server_restarts_survived=answer.survived.get(kid or ""),
        last_activity=info.get("last_activity"),
        **meter.usage(proc.pid).figures(),
    )


def _server(found: attribution.Found, answer: discovery.Answer, meter: _Meter) -> Server:
    kernels = [_kernel(k, answer, meter) for k in sorted(found.kernels, key=lambda k: k.created)]
    own = meter.usage(found.role)
    start = (
        found.supervisor
        or found.proc
        or (min(found.kernels, key=lambda k: k.created) if found.kernels else None)
    )
    mode = None
    if answer.socket or answer.port or found.proc:
        mode = "socket" if answer.socket else "tcp"
    return Server(
        user=user_name(found.uid),
        uid=found.uid,
        pid=found.proc.pid if found.proc else None,
        managed=found.managed,
        kind=found.kind,
        mode=mode,
        port=answer.port,
        socket=answer.socket,
        started_at=_iso(start.created) if start else None,
        uptime_seconds=int(time.time() - start.created) if start else None,
        token_required=answer.token_required,
        kernels=kernels,
        supervisor_pid=found.supervisor.pid if found.supervisor else None,
        server_cpu_percent=own.cpu_percent,
        server_memory_bytes=own.memory_bytes,
        root_dir=cmd.root_dir(found.options),
        notes=found.notes + answer.notes,
        **Usage.total([own, *kernels]).figures(),
    )
