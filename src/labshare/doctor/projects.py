"""Whether each of the member's labshare projects sets in `[tool.labshare]` only what labshare reads.

A kernel start refuses a project whose settings are wrong (`gpu = 0` for
`gpus = 0`), so doctor looks at every project a labshare kernelspec names
first, with the same check (`config.project.labshare_settings`).
"""

from __future__ import annotations

from pathlib import Path

from labshare.doctor import FAIL, OK, Check
from labshare.errors import LabshareError


def project_settings() -> Check:
    from labshare.config.project import project_settings as settings_of
    from labshare.envs import kernels as ks

    projects = sorted(
        {
            e.project
            for e in ks.list_kernels(ks.KernelPlaces.current())
            if e.owner == "labshare" and e.project
        }
    )
    problems = []
    for project in projects:
        try:
            settings_of(Path(project))
        except LabshareError as exc:
            problems.append(exc.message)
    if problems:
        return Check(
            "project-settings",
            FAIL,
            " ".join(problems),
            "fix what is named above in that pyproject.toml; until then its kernels do not start",
        )
    return Check(
        "project-settings",
        OK,
        f"{len(projects)} labshare project(s); each [tool.labshare] sets only what labshare reads",
    )
