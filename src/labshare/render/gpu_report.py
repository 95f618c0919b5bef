"""Text face of `labshare gpus`: the cards, their leases, and the GPU processes that hold none.

Sizes and durations are drawn as `ps` draws them (`render.monitor`), so a
card's memory reads the same in both.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING

from labshare.render import ago, table
from labshare.render.monitor import duration, size

if TYPE_CHECKING:
    from labshare.gpus.history import Reclaimed
    from labshare.monitor.gpu_report import GpusReport, LeaseRow
    from labshare.monitor.leased import Unleased

CARD_COLUMNS = ["GPU", "UUID", "NAME", "UTIL", "MEMORY", "LEASED TO"]
LEASE_COLUMNS = ["GPU", "USER", "HOLDER", "PID", "SINCE", "STATE", "NOTEBOOK"]
UNLEASED_COLUMNS = ["GPU", "USER", "PID", "GPU MEM", "COMMAND"]
HISTORY_COLUMNS = ["WHEN", "USER", "KERNEL", "NOTEBOOK", "IDLE", "GPU MEM BACK", "GPU"]


def _plain(text: str) -> str:
    """Text a member chose (a command line, a notebook's name), drawn as it is, never as rich markup."""
    from rich.markup import escape

    return escape(text)


def holder(row: LeaseRow) -> str:
    if row.client:  # a kernel another Jupyter client started: "kernel via papermill, demo"
        return f"kernel via {_plain(row.client)}" + (f", {_plain(row.label)}" if row.label else "")
    if row.kernel_id:
        return f"kernel {row.kernel_id[:8]}"
    return f"run {_plain(row.label)}" if row.label else "-"


def state(row: LeaseRow) -> str:
    if row.stale:
        return f"STALE: {row.stale}"
    shown = (
        f"idle {duration(row.idle_seconds)}"
        if row.state == "idle" and row.idle_seconds is not None
        else row.state or "-"
    )
    if row.reclaim_at:
        shown += f", reclaimed at {_clock(row.reclaim_at)} unless used"
    return shown


def _clock(stamp: str) -> str:
    return dt.datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def history(entries: list[Reclaimed]) -> str:
    """`labshare gpus --history`: one line per kernel idle reclaim shut down, oldest first."""
    if not entries:
        return "No kernel has had its GPU reclaimed."
    return table(
        HISTORY_COLUMNS,
        [
            [
                _clock(dt.datetime.fromtimestamp(e.at, dt.timezone.utc).isoformat()),
                e.user,
                e.kernel_id[:8],
                _plain(e.notebook) if e.notebook else "-",
                duration(e.idle_seconds),
                size(e.memory_bytes),
                ", ".join(e.cards),
            ]
            for e in entries
        ],
    )


def _leased_to(rows: list[LeaseRow]) -> str:
    live = sorted({r.user for r in rows if not r.stale})
    if not live:
        return "free"
    return ", ".join(live) + (" (shared)" if any(r.shared for r in rows if not r.stale) else "")


def _since(stamp: str | None) -> str:
    return ago(dt.datetime.fromisoformat(stamp)) if stamp else "-"


def _lease_line(index: str, row: LeaseRow, may_see: Callable[[int], bool]) -> list[str]:
    notebook = (
        _plain(row.notebook) if row.notebook else ("-" if may_see(row.uid) else "(not yours)")
    )
    return [
        index,
        row.user,
        holder(row),
        str(row.pid or "-"),
        _since(row.since),
        state(row),
        notebook,
    ]


def _unleased_line(proc: Unleased) -> list[str]:
    user = proc.user or "?"
    what = _plain(proc.command) if proc.command else "(not in this pid namespace)"
    if proc.leased_elsewhere:
        what += " (its lease is on another card)"
    return [str(proc.gpu), user, str(proc.pid), size(proc.memory_bytes), what]


def report(result: GpusReport, may_see: Callable[[int], bool]) -> str:
    """The text face; `may_see(uid)` says whose notebooks could have been shown (the caller's; root: all)."""
    lines: list[str] = []
    if result.assign != "per-kernel":
        lines.append(
            f'GPU leases are off on this host ([gpus] assign = "{result.assign}"): kernels use the '
            "cards the site config lists, and no process below needs a lease."
        )
    if result.gpu_unavailable:
        lines.append(f"GPUs: {result.gpu_unavailable}")
    elif not result.cards:
        lines.append("GPUs: none found")
    else:
        lines.append(
            table(
                CARD_COLUMNS,
                [
                    [
                        str(c.index),
                        c.uuid or "-",
                        c.name,
                        "-" if c.utilization_percent is None else f"{c.utilization_percent} %",
                        f"{size(c.memory_used_bytes)} / {size(c.memory_total_bytes)}",
                        _leased_to(c.leases),
                    ]
                    for c in result.cards
                ],
            )
        )
    leases = [_lease_line(str(c.index), r, may_see) for c in result.cards for r in c.leases]
    leases += [_lease_line(r.card, r, may_see) for r in result.other_leases]
    if leases:
        lines += ["", f"Leases ({result.leases_dir}):", table(LEASE_COLUMNS, leases)]
    if result.unleased:
        head = (
            "GPU processes without a lease:" if result.assign == "per-kernel" else "GPU processes:"
        )
        lines += ["", head, table(UNLEASED_COLUMNS, [_unleased_line(p) for p in result.unleased])]
    if result.stale:
        lines.append(
            f"note: {len(result.stale)} stale lease(s) hold no card; each goes at its owner's next claim, "
            "or at any claim by root."
        )
    return "\n".join(lines)
