"""Text faces of `labshare hub-config`: the summary after writing, and the migration plan."""

from __future__ import annotations

from typing import Any


def written(result: Any) -> str:
    lines = [f"Wrote the JupyterHub config for --spawner {result.spawner} to {result.written_to}."]
    lines.append(
        f"Members: {', '.join(result.members) or 'none'}; admins: {', '.join(result.admins) or 'none'}."
    )
    if result.bind_url:
        lines.append(f"The hub listens on {result.bind_url}.")
    if result.idle_timeout:
        lines.append(
            f"Idle servers are stopped after {result.idle_timeout // 3600} h {result.idle_timeout % 3600 // 60} min."
        )
    lines += [f"Note: {note}" for note in result.not_carried]
    lines.append("See the steps with `labshare hub-config --plan`.")
    return "\n".join(lines)


def plan(p: Any) -> str:
    out = [f"Moving the lab on {p.host} to JupyterHub ({p.spawner})", ""]
    if p.running:
        rows = [
            f"  {r.user}" + (f" (port {r.port})" if r.port else " (Unix socket)") for r in p.running
        ]
        out += ["Servers running now:", *rows, ""]
    else:
        out += ["No member has a labshare server running now.", ""]
    if p.ports_freed:
        out += [f"Ports freed: {', '.join(str(x) for x in p.ports_freed)}", ""]
    for number, step in enumerate(p.steps, 1):
        out.append(f"{number}. {step.title}")
        if step.text:
            out.append(f"   {step.text}")
        out += [f"   $ {cmd}" for cmd in step.commands]
        out.append("")
    if p.unit:
        out += ["The systemd unit (/etc/systemd/system/jupyterhub.service):", ""]
        out += [f"   {line}" if line else "" for line in p.unit.rstrip().splitlines()]
        out.append("")
    for warning in p.warnings:
        out.append(f"Note: {warning}")
    out.append(f"Members then reach the hub with: {p.access}")
    return "\n".join(out)
