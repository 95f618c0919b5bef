"""Text faces of `labshare env …` and `labshare kernels …`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from labshare.render import table

if (
    TYPE_CHECKING
):  # the views only read attributes; `env list` need not import the project machinery
    from labshare.envs.kernels import KernelEntry, PruneResult
    from labshare.envs.projects import AdoptPlan, EnvResult, RemoveResult


def _short(path: str | None) -> str:
    if not path:
        return "-"
    home = str(Path.home())
    return "~" + path[len(home) :] if path == home or path.startswith(home + os.sep) else path


def registered(r: EnvResult) -> str:
    lines = [f"Kernel ready: {r.display_name}"]
    lines.append(f"  kernel name   {r.name}")
    lines.append(f"  project       {_short(r.project)} ({r.manager})")
    lines.append(f"  python        {_short(r.python)} ({r.python_version})")
    if r.installed:
        lines.append(f"  installed     {', '.join(r.installed)}")
    if r.changed_files:
        lines.append(f"  changed       {', '.join(_short(f) for f in r.changed_files)}")
    if r.replaced_specs:
        lines.append(f"  replaced      {', '.join(r.replaced_specs)}")
    lines.append("Pick it in JupyterLab's launcher; a running server shows it without a restart.")
    return "\n".join(lines)


def plan(p: AdoptPlan) -> str:
    pr = p.project
    where = f"environment {_short(str(pr.env))}{'' if p.env_exists else ' (not created yet)'}"
    lines = [f"Found a {pr.manager} project {pr.label!r} in {_short(str(pr.path))}, {where}."]
    if p.rye_diff:
        lines.append(
            "uv ignores [tool.rye] dev-dependencies; labshare would change pyproject.toml like this:"
        )
        lines.append(p.rye_diff.rstrip("\n"))
    for e in p.old_specs:
        lines.append(f"Old kernelspec {e.name} ({e.display_name!r}) also points into this project.")
    return "\n".join(lines)


def listing(entries: list[KernelEntry]) -> str:
    if not entries:
        return "No kernels."
    rows = [
        [e.display_name, e.name, e.status, e.owner, _short(e.project or e.python)] for e in entries
    ]
    out = [table(["KERNEL", "NAME", "STATUS", "OWNER", "PROJECT / PYTHON"], rows)]
    for e in entries:
        if e.status != "ok" and e.problems:
            out.append(f"{e.name}: {'; '.join(e.problems)}")
    if any(e.status == "stale" for e in entries):
        out.append(
            "`labshare kernels prune` removes labshare's stale kernels (add --foreign for the others)."
        )
    return "\n".join(out)


def removed(r: RemoveResult) -> str:
    text = f"Removed kernel {r.display_name} ({r.name})."
    if r.deleted_files:
        text += f" Deleted {_short(r.project)}."
    elif r.project:
        text += f" The project stays in {_short(r.project)}."
    return text


def would_prune(r: PruneResult) -> str:
    lines = ["Stale kernelspecs:"]
    lines += [f"  {e.name} ({e.display_name}): {'; '.join(e.problems)}" for e in r.candidates]
    return "\n".join(lines)


def pruned(r: PruneResult) -> str:
    lines = []
    if not r.candidates:
        lines.append("Nothing to prune: every labshare kernel can start.")
    elif r.removed:
        lines.append(
            f"Removed {len(r.removed)} kernelspec(s): {', '.join(e.name for e in r.removed)}."
        )
    else:
        lines.append("Removed nothing.")
    if r.stale_foreign_kept:
        lines.append(
            f"Kept {len(r.stale_foreign_kept)} stale kernelspec(s) labshare did not make "
            f"({', '.join(r.stale_foreign_kept)}); `labshare kernels prune --foreign` removes them."
        )
    return "\n".join(lines)
