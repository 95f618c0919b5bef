"""One read of every process, and CPU % measured over an interval for all of them at once.

psutil reads /proc once per process with `process_iter(attrs)`; everything
`ps` decides later (roles, owners, memory) comes from that one pass, so its
cost grows with the number of processes, not servers.  CPU % needs two
readings: `top` reuses the previous scan's, `ps` waits one short interval
while the servers are being asked for their sessions.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psutil

CPU_INTERVAL = 0.2


@dataclass
class Proc:
    """What one process looked like at one moment."""

    handle: psutil.Process
    pid: int
    ppid: int
    uid: int
    argv: list[str]
    created: float
    rss: int
    cpu: float
    read_at: float


def _cpu_seconds(times: Any) -> float:
    return float(times.user + times.system) if times is not None else 0.0


def read_processes() -> dict[int, Proc]:
    found: dict[int, Proc] = {}
    attrs = ["ppid", "uids", "cmdline", "create_time", "memory_info", "cpu_times"]
    for handle in psutil.process_iter(attrs):
        info = handle.info
        if not info.get("uids") or info.get("create_time") is None:
            continue
        mem = info.get("memory_info")
        found[handle.pid] = Proc(
            handle=handle,
            pid=handle.pid,
            ppid=info.get("ppid") or 0,
            uid=info["uids"].real,
            argv=info.get("cmdline") or [],
            created=info["create_time"],
            rss=mem.rss if mem else 0,
            cpu=_cpu_seconds(info.get("cpu_times")),
            read_at=time.monotonic(),
        )
    return found


class CpuSampler:
    """Keeps each process's last CPU reading (by pid and start time, so a reused pid starts afresh)."""

    def __init__(self, interval: float = CPU_INTERVAL):
        self.interval = interval
        self._previous: dict[tuple[int, float], tuple[float, float]] = {}

    def percent(
        self, procs: dict[int, Proc], pids: Iterable[int], began: float
    ) -> dict[int, float]:
        """CPU % per pid since the last sample, or over `interval` from `began` for pids seen first now."""
        wanted = list(pids)
        first: dict[int, tuple[float, float]] = {}
        for pid in wanted:
            proc = procs[pid]
            before = self._previous.get((pid, proc.created))
            if before is not None and proc.read_at - before[1] >= 0.05:
                first[pid] = before
        missing = [pid for pid in wanted if pid not in first]
        current = {pid: (procs[pid].cpu, procs[pid].read_at) for pid in wanted}
        if missing:
            time.sleep(max(0.0, began + self.interval - time.monotonic()))
            for pid in missing:
                first[pid] = current[pid]
                with contextlib.suppress(psutil.Error):
                    current[pid] = (_cpu_seconds(procs[pid].handle.cpu_times()), time.monotonic())
        self._previous = {(pid, procs[pid].created): current[pid] for pid in wanted}
        percent = {}
        for pid in wanted:
            (c0, t0), (c1, t1) = first[pid], current[pid]
            percent[pid] = round(max(0.0, (c1 - c0) / (t1 - t0) * 100), 1) if t1 > t0 else 0.0
        return percent
