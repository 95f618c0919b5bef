"""Text faces of `labshare admin check` and `labshare admin ports`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from labshare.render import table

if TYPE_CHECKING:
    from labshare.audit import PortRow, SiteCheck


def _seconds(value: float | None) -> str:
    if not value:
        return "off"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if value >= size and value % size == 0:
            return f"{int(value // size)} {unit}"
    return f"{int(value)} s"


def check(result: SiteCheck) -> str:
    if not result.exists:
        head = f"No site config at {result.site_config}: every member gets labshare's defaults."
    else:
        head = f"{result.site_config} is valid."
    rows = [
        [
            m.user + (" (admin)" if m.admin else ""),
            m.mode,
            m.root_dir,
            str(m.port or "-"),
            ",".join(map(str, m.gpus)) if m.gpus is not None else "all",
            m.memory_max or "-",
            f"{m.cpus:g}" if m.cpus else "-",
            _seconds(m.cull_idle_kernels_after),
            _seconds(m.shutdown_idle_server_after),
        ]
        for m in result.members
    ]
    lines = [head]
    if rows:
        lines.append(table(["member", "mode", "folder", "port", "GPUs", "memory", "CPUs", "cull idle kernels",
                            "stop idle server"], rows))
    lines += [f"problem: {p}" for p in result.problems]
    return "\n".join(lines)


def ports(rows: list[PortRow]) -> str:
    if not rows:
        return "No ports are assigned or claimed."
    body = [
        [
            str(r.port),
            r.owner,
            r.source,
            (f"{r.listening_user}" + (f" (pid {r.listening_pid})" if r.listening_pid else "")) if r.listening_user else "-",
            "CONFLICT" if r.conflict else "",
        ]
        for r in rows
    ]
    return table(["port", "belongs to", "how", "listening now", ""], body)
