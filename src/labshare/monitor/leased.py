"""Which GPU process runs under which lease, and which hold a card with none ("unleased").

A lease names one pid: a kernel's, or a `labshare run` command's.  What that
process starts (a notebook's `!python train.py`, a DataLoader's workers)
runs under the same lease, so a process on a card is leased when it or an
ancestor holds a live lease on that very card.  Anything else NVML lists on
a card is unleased: a script in tmux, a kernel of a Jupyter labshare did not
start, a process that strayed onto a card its lease does not name.  All of
it comes from /proc and the leases directory, which every member may read;
a command line is shown without connection files or tokens.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from labshare.monitor import argv as cmd
from labshare.monitor.sampling import Proc
from labshare.users import user_name

if TYPE_CHECKING:
    from labshare.gpus.leases import Lease
    from labshare.gpus.nvml import GpuDevice

_MAX_DEPTH = 64
COMMAND_WIDTH = 80
_SECRET = re.compile(r"(token|password|secret)", re.IGNORECASE)


@dataclass(frozen=True)
class LeasedCard:
    """One card a kernel holds a lease on; `index` is None when NVML does not list that UUID now."""

    uuid: str
    index: int | None


@dataclass(frozen=True)
class Unleased:
    """A process holding (part of) a card without a live lease on it."""

    gpu: int
    uuid: str | None
    pid: int
    user: str | None  # None when the pid is not in this host's pid namespace (a container's)
    uid: int | None
    command: str | None
    memory_bytes: int | None  # None where the driver does not say
    leased_elsewhere: bool = False  # it holds a lease, but on other cards


def lineage(pid: int, procs: dict[int, Proc]) -> list[int]:
    """`pid` and its ancestors, nearest first, as far as /proc shows them."""
    found = [pid]
    proc = procs.get(pid)
    while proc is not None and proc.ppid > 1 and len(found) < _MAX_DEPTH:
        found.append(proc.ppid)
        proc = procs.get(proc.ppid)
    return found


def by_pid(live: Iterable[Lease]) -> dict[int, list[Lease]]:
    """Live leases by the pid holding them."""
    held: dict[int, list[Lease]] = {}
    for lease in live:
        if lease.live and lease.pid is not None:
            held.setdefault(lease.pid, []).append(lease)
    return held


def unleased(
    devices: Sequence[GpuDevice],
    procs: dict[int, Proc],
    live: Sequence[Lease],
    only_uid: int | None = None,
) -> list[Unleased]:
    """Every process on a card without a lease on it (of `only_uid`, or everyone's), by card then pid."""
    held = by_pid(live)
    found = []
    for device in devices:
        for pid, memory in sorted(device.processes.items()):
            proc = procs.get(pid)
            if only_uid is not None and (proc is None or proc.uid != only_uid):
                continue
            mine = [lease for p in lineage(pid, procs) for lease in held.get(p, [])]
            if any(device.uuid is None or lease.card == device.uuid for lease in mine):
                continue
            found.append(
                Unleased(
                    gpu=device.index,
                    uuid=device.uuid,
                    pid=pid,
                    user=user_name(proc.uid) if proc else None,
                    uid=proc.uid if proc else None,
                    command=command(proc.argv) if proc else None,
                    memory_bytes=memory,
                    leased_elsewhere=bool(mine),
                )
            )
    return found


def cards_of(
    kernel_id: str | None, pid: int, live: Sequence[Lease], devices: Sequence[GpuDevice]
) -> list[LeasedCard]:
    """The cards a kernel holds leases on, found by its id or its pid, in index order."""
    index = {d.uuid: d.index for d in devices if d.uuid}
    cards = {
        lease.card
        for lease in live
        if lease.live and ((kernel_id and lease.kernel_id == kernel_id) or lease.pid == pid)
    }
    found = [LeasedCard(uuid=card, index=index.get(card)) for card in cards]
    return sorted(found, key=lambda c: (c.index is None, c.index or 0, c.uuid))


def command(argv: list[str]) -> str | None:
    """A command line as anyone may be shown it: the program's name, no connection file, no token."""
    if not argv:
        return None
    connection = cmd.connection_file(argv)
    words = [os.path.basename(argv[0])]
    hide = False
    for arg in argv[1:]:
        if hide:
            arg, hide = "…", False
        elif connection and connection in arg:
            arg = arg.replace(connection, "…")
        elif arg.startswith("-") and _SECRET.search(arg):
            hide = "=" not in arg  # `--token VALUE`: the value is the next word
            arg = arg if hide else arg.split("=", 1)[0] + "=…"
        words.append(arg)
    text = " ".join(words)
    return text if len(text) <= COMMAND_WIDTH else text[: COMMAND_WIDTH - 1] + "…"
