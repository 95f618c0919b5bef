"""What `labshare gpus` shows: every card, who leases it, and who uses one without a lease.

It is `ps --all-users` seen from the cards' side, built from the same
snapshot (`processes.Scanner`), so the two never disagree about a pid or a
byte.  Anyone may read the leases directory and /proc, so every member sees
every lease's user, kernel id, pid and since; how long a kernel has been
idle and which notebook it runs come from the kernel's own server, which
only its owner and root may ask, so only they see those.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from labshare.config import GpuSettings
from labshare.gpus.history import Notice
from labshare.gpus.leases import Lease
from labshare.monitor.leased import Unleased
from labshare.monitor.processes import Kernel, Snapshot


@dataclass
class LeaseRow:
    """One lease as `gpus` shows it; `state`, `idle_seconds` and `notebook` only where they are known."""

    card: str  # the card's UUID
    user: str
    uid: int
    kernel_id: str | None
    # a `labshare run` command's, instead of a kernel id; a gated kernel's project
    label: str | None
    pid: int | None
    since: str | None
    shared: bool
    stale: str | None = None  # why it holds nothing; None while live
    state: str | None = None  # the kernel's "busy" or "idle", as its server says
    idle_seconds: int | None = None
    notebook: str | None = None
    client: str | None = None  # the program that started a kernel outside the Lab (papermill, code)
    reclaim_at: str | None = (
        None  # when idle reclaim shuts its kernel down unless it is used (owner, root)
    )


@dataclass
class CardRow:
    """One card, as NVML reports it, with its leases (live first)."""

    index: int
    uuid: str | None
    name: str
    utilization_percent: int | None
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    leases: list[LeaseRow] = field(default_factory=list)


@dataclass
class GpusReport:
    """Everything `labshare gpus` shows; `--json` is this, field for field."""

    user: str
    taken_at: str
    assign: str
    sharing: str
    leases_dir: str
    cards: list[CardRow] = field(default_factory=list)
    unleased: list[Unleased] = field(default_factory=list)
    other_leases: list[LeaseRow] = field(default_factory=list)  # on cards NVML does not list now
    gpu_unavailable: str | None = None

    @property
    def stale(self) -> list[LeaseRow]:
        return [row for row in self.all_leases if row.stale]

    @property
    def all_leases(self) -> list[LeaseRow]:
        return [row for card in self.cards for row in card.leases] + self.other_leases


def build(
    snap: Snapshot,
    settings: GpuSettings,
    now: float | None = None,
    notices: Mapping[str, Notice] | None = None,
) -> GpusReport:
    """The report, from a snapshot that read the leases (`Scanner(leases_dir=...)`) of everyone;
    `notices` are the caller's server's reclaim warnings, by kernel id."""
    now = time.time() if now is None else now
    kernels = _kernels(snap)
    rows = [
        _row(
            lease,
            kernels.get((lease.uid, lease.kernel_id or "")) or kernels.get((lease.uid, lease.pid)),
            now,
        )
        for lease in snap.leases
    ]
    for row in rows:
        notice = (notices or {}).get(row.kernel_id or "")
        if notice is not None and row.user == snap.user and not row.stale:
            row.reclaim_at = _iso(notice.at)
    rows.sort(key=lambda r: (r.stale is not None, r.since or "", r.user))
    known = {d.uuid for d in snap.gpus if d.uuid}
    cards = [
        CardRow(
            index=d.index,
            uuid=d.uuid,
            name=d.name,
            utilization_percent=d.utilization_percent,
            memory_used_bytes=d.memory_used_bytes,
            memory_total_bytes=d.memory_total_bytes,
            leases=[r for r in rows if d.uuid and r.card == d.uuid],
        )
        for d in snap.gpus
    ]
    return GpusReport(
        user=snap.user,
        taken_at=snap.taken_at,
        assign=settings.assign,
        sharing=settings.sharing,
        leases_dir=str(settings.leases_dir),
        cards=cards,
        unleased=snap.unleased,
        other_leases=[r for r in rows if r.card not in known],
        gpu_unavailable=snap.gpu_unavailable,
    )


def _kernels(snap: Snapshot) -> dict[tuple[int, object], Kernel]:
    """Each kernel by (owner, kernel id) and by (owner, pid): a lease only names its owner's kernels."""
    found: dict[tuple[int, object], Kernel] = {}
    for server in snap.servers:
        for kernel in server.kernels:
            found[(server.uid, kernel.pid)] = kernel
            if kernel.kernel_id:
                found[(server.uid, kernel.kernel_id)] = kernel
    return found


def _row(lease: Lease, kernel: Kernel | None, now: float) -> LeaseRow:
    row = LeaseRow(
        card=lease.card,
        user=lease.user,
        uid=lease.uid,
        kernel_id=lease.kernel_id,
        label=lease.label,
        pid=lease.pid,
        since=_iso(lease.since),
        shared=lease.shared,
        stale=lease.stale,
        client=lease.client,
    )
    if kernel is not None and lease.live:
        row.state, row.notebook = kernel.execution_state, kernel.notebook
        last = _parse(kernel.last_activity)
        if kernel.execution_state == "idle" and last is not None:
            row.idle_seconds = max(0, int(now - last))
    return row


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return dt.datetime.fromtimestamp(moment, dt.timezone.utc).isoformat(timespec="seconds")


def _parse(stamp: str | None) -> float | None:
    """Jupyter's `last_activity` ("2024-05-01T10:00:00.123456Z") as seconds since the epoch."""
    if not stamp:
        return None
    try:
        return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
