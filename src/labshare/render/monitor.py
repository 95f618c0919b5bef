"""Text faces of `ps`, `top` and `admin stop`: one row per server, its kernels indented below.

The rows are built once (`rows`) and drawn either as a string (`ps`) or as a
rich renderable that `top` refreshes in place, so both always agree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labshare.render import table

if TYPE_CHECKING:
    from labshare.monitor.leased import LeasedCard, Unleased
    from labshare.monitor.processes import Kernel, Server, Snapshot
    from labshare.monitor.stop import AdminStopResult

COLUMNS = ["USER", "PID", "WHAT", "LISTENS ON", "UP", "CPU %", "MEMORY", "GPU MEM", "NOTEBOOK"]
SORTS = {"memory": "memory_bytes", "cpu": "cpu_percent", "gpu": "gpu_memory_bytes"}
UNLEASED_SHOWN = 5  # unleased GPU processes warned about one by one; the rest are counted


def size(value: int | None) -> str:
    if value is None:
        return "n/a"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit in ("B", "KiB") else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TiB"


def duration(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else f"{seconds} s"


def what(server: Server) -> str:
    if server.pid is None and server.kind == "kernels":
        return "kernels, no server"
    if server.managed:
        return "labshare" + ("" if server.pid else " (restarting)")
    label = f"jupyter {server.kind}, unmanaged"
    if server.token_required is False:
        return label + ", NO TOKEN"
    if server.token_required is None:
        return label + ", token unknown"
    return label


def where(server: Server) -> str:
    if server.socket:
        return "socket"
    if server.port:
        return f"127.0.0.1:{server.port}"
    return "-"


def _gpu(value: int | None, unavailable: bool) -> str:
    return "no GPU" if unavailable else size(value)


def _kernel_label(kernel: Kernel, secrets: bool) -> str:
    if kernel.notebook:
        return kernel.notebook
    return "-" if secrets else "(not yours)"


def sort_key(by: str | None) -> Any:
    field = SORTS.get(by or "")
    if field is None:
        return None
    return lambda item: getattr(item, field) or 0


def rows(snap: Snapshot, sort: str | None = None, may_see: Any = None) -> list[list[str]]:
    """Table rows: each server, then its kernels; `may_see(uid)` says whether notebooks could be known."""
    servers = list(snap.servers)
    key = sort_key(sort)
    if key is not None:
        servers.sort(key=key, reverse=True)
    no_gpu = snap.gpu_unavailable is not None
    out = []
    for s in servers:
        out.append(
            [
                s.user,
                str(s.pid or s.supervisor_pid or "-"),
                what(s),
                where(s),
                duration(s.uptime_seconds),
                f"{s.cpu_percent:.1f}",
                size(s.memory_bytes),
                _gpu(s.gpu_memory_bytes, no_gpu),
                f"{len(s.kernels)} kernel(s)",
            ]
        )
        kernels = sorted(s.kernels, key=key, reverse=True) if key is not None else s.kernels
        secrets = may_see(s.uid) if may_see else True
        for k in kernels:
            name = k.name or "kernel"
            if k.execution_state == "busy":
                name += " (busy)"
            if k.server_restarts_survived:
                name += f" (survived {k.server_restarts_survived} restart(s))"
            if k.gpu_lease:
                name += f" (lease: {lease(k.gpu_lease)})"
            out.append(
                [
                    "",
                    f"  {k.pid}",
                    f"  {name}",
                    "",
                    "",
                    f"{k.cpu_percent:.1f}",
                    size(k.memory_bytes),
                    _gpu(k.gpu_memory_bytes, no_gpu),
                    _kernel_label(k, secrets),
                ]
            )
    return out


GPU_COLUMNS = ["GPU", "NAME", "UTIL", "MEMORY", "USED BY"]


def card_users(snap: Snapshot) -> dict[int, list[str]]:
    """Card index -> the members whose servers (or their kernels) use it, sorted."""
    users: dict[int, set[str]] = {}
    for s in snap.servers:
        for index in s.gpus:
            users.setdefault(index, set()).add(s.user)
    return {index: sorted(names) for index, names in users.items()}


def gpu_rows(snap: Snapshot) -> list[list[str]]:
    users = card_users(snap)
    return [
        [
            str(d.index),
            d.name,
            "-" if d.utilization_percent is None else f"{d.utilization_percent} %",
            f"{size(d.memory_used_bytes)} / {size(d.memory_total_bytes)}",
            ", ".join(users.get(d.index, [])) or "-",
        ]
        for d in snap.gpus
    ]


def gpu_line(snap: Snapshot) -> str | None:
    if snap.gpu_unavailable:
        return f"GPUs: {snap.gpu_unavailable}"
    if not snap.gpus:
        return "GPUs: none found"
    return None


def lease(cards: list[LeasedCard]) -> str:
    """The cards a kernel leases, by index as the GPU table numbers them (by UUID where NVML lacks one)."""
    return ", ".join(f"GPU {c.index}" if c.index is not None else c.uuid for c in cards)


def unleased_lines(procs: list[Unleased]) -> list[str]:
    """One warning per GPU process without a lease, as `ps` warns of a server without a token."""
    lines = []
    for p in procs[:UNLEASED_SHOWN]:
        held = f"{size(p.memory_bytes)} of GPU {p.gpu}"
        why = "which its lease does not name" if p.leased_elsewhere else "without a lease"
        lines.append(
            f"warning: {p.user or '?'}'s pid {p.pid} ({p.command or 'not in this pid namespace'}) holds {held} "
            f"{why}, so a kernel may be placed on that card too; start such commands with "
            "`labshare run --gpus N -- COMMAND`."
        )
    if len(procs) > UNLEASED_SHOWN:
        lines.append(
            f"warning: {len(procs) - UNLEASED_SHOWN} more GPU process(es) hold a card without a lease; "
            "see `labshare gpus`."
        )
    return lines


def _notes(snap: Snapshot) -> list[str]:
    lines = []
    for s in snap.servers:
        for n in s.notes:
            lines.append(
                f"note: {s.user}'s server {s.pid or s.supervisor_pid or ''}: {n}".replace("  ", " ")
            )
        if not s.managed and s.token_required is False:
            lines.append(
                f"warning: {s.user}'s Jupyter (pid {s.pid}) on {where(s)} has no token: anyone on this "
                "host can run code as them; `labshare start` gives them a protected one."
            )
    if snap.leasing:
        lines += unleased_lines(snap.unleased)
    return lines


def empty_line(snap: Snapshot) -> str:
    return (
        "No Jupyter servers run on this host."
        if snap.all_users
        else ("You have no Jupyter server running on this host (see everyone's with --all-users).")
    )


def ps(snap: Snapshot, sort: str | None = None, may_see: Any = None) -> str:
    parts = []
    if snap.servers:
        parts.append(table(COLUMNS, rows(snap, sort, may_see)))
    else:
        parts.append(empty_line(snap))
    line = gpu_line(snap)
    parts.append(line if line else table(GPU_COLUMNS, gpu_rows(snap)))
    parts.extend(_notes(snap))
    return "\n".join(parts)


def live(snap: Snapshot, sort: str, may_see: Any = None) -> Any:
    """What `top` draws: the servers table, the GPUs, and the keys."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    def build(columns: list[str], body: list[list[str]], title: str | None = None) -> Table:
        tbl = Table(*columns, title=title, box=None, pad_edge=False, header_style="bold")
        for row in body:
            tbl.add_row(*row)
        return tbl

    parts: list[Any] = [Text(f"labshare top — {snap.taken_at} — sorted by {sort}", style="bold")]
    parts.append(
        build(COLUMNS, rows(snap, sort, may_see)) if snap.servers else Text(empty_line(snap))
    )
    line = gpu_line(snap)
    parts.append(Text(line) if line else build(GPU_COLUMNS, gpu_rows(snap)))
    parts.extend(Text(n) for n in _notes(snap))
    parts.append(Text("sort: m memory · c CPU · g GPU — q quits", style="dim"))
    return Group(*parts)


def admin_stop(result: AdminStopResult) -> str:
    lines = []
    if not result.found:
        return f"{result.user} has no Jupyter server or kernel running on this host."
    for s in result.found:
        lines.append(
            f"{'Stopped' if result.stopped else 'Found'} {what(s)} of {s.user} (pid {s.pid or s.supervisor_pid}, "
            f"{where(s)}, up {duration(s.uptime_seconds)}, {size(s.memory_bytes)})"
        )
        for k in s.kernels:
            lines.append(
                f"  kernel {k.pid} {k.name or ''} {k.notebook or '-'} ({size(k.memory_bytes)})".replace(
                    "  (", " ("
                )
            )
    lines.extend(f"note: {n}" for n in result.notes)
    if result.left:
        lines.append(f"Still running after the stop: pids {', '.join(map(str, result.left))}.")
    return "\n".join(lines)


def admin_plan(user: str, servers: list[Server]) -> str:
    lines = [f"{user} runs:"]
    for s in servers:
        lines.append(
            f"  {what(s)} (pid {s.pid or s.supervisor_pid}, {where(s)}, up {duration(s.uptime_seconds)}, "
            f"{size(s.memory_bytes)})"
        )
        for k in s.kernels:
            lines.append(
                f"    kernel {k.pid} {k.name or 'kernel'}: {k.notebook or '-'} ({size(k.memory_bytes)})"
            )
    return "\n".join(lines)
