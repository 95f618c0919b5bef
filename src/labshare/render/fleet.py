"""Text face of `labshare fleet`: one line per server, then one line per card."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labshare.render import table

if TYPE_CHECKING:
    from labshare.fleet.report import FleetReport

GIB = 1 << 30


def _gib(value: object) -> str:
    return f"{value / GIB:.0f}" if isinstance(value, int) else "?"


def servers(report: FleetReport) -> str:
    rows = []
    for s in report.servers:
        if not s["reachable"]:
            rows.append([s["host"], s["error"] or "error", "", "", "", "", ""])
            continue
        load, mine = s["load"] or {}, s["mine"] or {}
        memory = (
            f"{_gib(load.get('memory_total', 0) - load.get('memory_available', 0))}/"
            f"{_gib(load.get('memory_total'))} GiB"
        )
        yours = (
            f"running ({mine.get('kernels', 0)} kernels)" if mine.get("running") else "not running"
        )
        free = str(s.get("can_get", 0)) if s.get("cards") else "no GPU"
        rows.append(
            [
                s["host"],
                f"ok ({s.get('labshare') or '?'})",
                free,
                f"{load.get('load1', 0):g}/{load.get('cpus', 0)}",
                memory,
                str(s.get("servers_running", 0)),
                yours,
            ]
        )
    return table(
        ["SERVER", "ANSWER", "GPUS FOR YOU", "LOAD/CPUS", "MEMORY", "SERVERS", "YOURS"], rows
    )


def cards(report: FleetReport) -> str:
    rows = []
    for s in report.servers:
        for c in s.get("cards") or []:
            rows.append(
                [
                    s["host"],
                    str(c["index"]),
                    c["name"],
                    f"{_gib(c.get('memory_used'))}/{_gib(c.get('memory_total'))} GiB",
                    "?" if c.get("utilization") is None else f"{c['utilization']}%",
                    _state(c),
                ]
            )
    if not rows:
        return ""
    return table(["SERVER", "GPU", "NAME", "MEMORY", "UTIL", "FREE / HOLDER"], rows)


def _state(card: dict[str, Any]) -> str:
    if card.get("free"):
        return "free for you"
    holder = card.get("holder")
    if not holder:
        return "not yours to use"
    use = f" ({card['holder_use']})" if card.get("holder_use") else ""
    return f"{'you' if card.get('mine') else holder}{use}"


def report(result: FleetReport) -> str:
    parts = [servers(result)]
    listed = cards(result)
    if listed:
        parts += ["", listed]
    why = [f"{s['host']}: {s['message']}" for s in result.servers if s.get("message")]
    if why:
        parts += ["", *why]
    return "\n".join(parts)
