"""Text faces of `labshare admin check` and `labshare admin ports`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from labshare.render import table

if TYPE_CHECKING:
    from labshare.audit import PortRow, SiteCheck
    from labshare.config import GpuSettings
    from labshare.notify.plan import LabNotices


def span(value: float | None) -> str:
    """A duration from the site config as an admin wrote it ("2 h", "15 min"), or "off"."""
    if not value:
        return "off"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if value >= size and value % size == 0:
            return f"{int(value // size)} {unit}"
    return f"{int(value)} s"


def gpu_line(gpus: GpuSettings) -> str:
    """The site's `[gpus]` in one line: how cards are given out, and where the leases are."""
    if not gpus.leased:
        return 'GPU leases: off ([gpus] assign = "off"): each member\'s gpus list is all the GPU policy.'
    reclaim = (
        f"idle kernels' cards reclaimed after {span(gpus.idle_reclaim_after)}, warned "
        f"{span(gpus.reclaim_warning)} ahead"
        if gpus.idle_reclaim_after
        else "no idle reclaim"
    )
    return (
        f"GPU leases: per kernel, {gpus.per_kernel} per kernel, {gpus.sharing}, {reclaim}; "
        f"leases in {gpus.leases_dir}."
    )


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
            str(m.max_gpus) if m.max_gpus is not None else "-",
            str(m.per_kernel) if m.per_kernel is not None else "-",
            m.memory_max or "-",
            f"{m.cpus:g}" if m.cpus else "-",
            span(m.cull_idle_kernels_after),
            span(m.shutdown_idle_server_after),
            m.server or "-",
        ]
        for m in result.members
    ]
    lines = [head, gpu_line(result.gpus)]
    if rows:
        lines.append(
            table(
                [
                    "member",
                    "mode",
                    "folder",
                    "port",
                    "GPUs",
                    "max GPUs",
                    "GPUs/kernel",
                    "memory",
                    "CPUs",
                    "cull idle kernels",
                    "stop idle server",
                    "server now",
                ],
                rows,
            )
        )
    lines += notices(result.notices)
    lines += [f"problem: {p}" for p in result.problems]
    return "\n".join(lines)


def notices(plan: LabNotices | None) -> list[str]:
    """The lab's notice channels and who gets what, under the members' table."""
    if plan is None:
        return ["notices: no lab channels ([notify] channels_file is not set)"]
    state = {True: "running", False: "NOT running", None: "unknown (no systemd)"}
    lines = [
        f"notices: channels in {plan.channels_file}; spool {plan.spool_dir}; "
        f"service {state[plan.service_running]}"
    ]
    if plan.spool_problem:
        lines.append(f"  spool: {plan.spool_problem}")
    if plan.problem:
        lines.append(f"  channels: {plan.problem}")
    lines.append(f"  addressed: {plan.address}")
    lines += [f"  channel: {url}" for url in plan.channels]
    for user, where in plan.members.items():
        lines.append(f"  {user}: " + "; ".join(where))
    return lines


def ports(rows: list[PortRow]) -> str:
    if not rows:
        return "No ports are assigned or claimed."
    body = [
        [
            str(r.port),
            r.owner,
            r.source,
            (f"{r.listening_user}" + (f" (pid {r.listening_pid})" if r.listening_pid else ""))
            if r.listening_user
            else "-",
            "CONFLICT" if r.conflict else "",
        ]
        for r in rows
    ]
    return table(["port", "belongs to", "how", "listening now", ""], body)
