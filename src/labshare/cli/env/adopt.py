"""`labshare env adopt [PATH]`: make an existing project's environment a kernel.

Every change to the member's files is shown and confirmed here, before `envs` makes it.
"""

from __future__ import annotations

from pathlib import Path

import click

from labshare.cli import App
from labshare.cli.options import confirm, env_option, gpus_option, json_option, yes_option
from labshare.render import emit, note
from labshare.render import envs as view


@click.command()
@click.argument("path", type=click.Path(path_type=Path), default=".")
@env_option
@gpus_option
@yes_option
@json_option
@click.pass_obj
def adopt(
    app: App, path: Path, env_pairs: tuple[str, ...], gpus: int | None, yes: bool, as_json: bool
) -> None:
    """Register an existing project's environment (uv, Rye, venv, Poetry, PDM, Hatch, conda, pixi).

    Anything that changes your files is shown and asked first: moving Rye's
    dev-dependencies to [dependency-groups], adding ipykernel, replacing old
    hand-made kernelspecs that point into the project.
    """
    from labshare.envs import kernels, projects

    places = kernels.KernelPlaces.current()
    env_updates = projects.parse_env_pairs(env_pairs)
    plan = projects.plan_adopt(places, path, gpus)
    note(view.plan(plan))
    migrate = bool(plan.rye_diff) and confirm(
        "Move [tool.rye] dev-dependencies into [dependency-groups] as shown?", yes
    )
    add_kernel = plan.needs_ipykernel and confirm(
        f"ipykernel is missing from {plan.project.env}; add it so Jupyter can start this environment?",
        yes,
    )
    replace = bool(plan.old_specs) and confirm(
        f"Replace {len(plan.old_specs)} old kernelspec(s) pointing into this project "
        f"({', '.join(e.name for e in plan.old_specs)})?",
        yes,
    )
    result = projects.adopt(
        places,
        plan,
        migrate=migrate,
        add_ipykernel=add_kernel,
        replace_old=replace,
        env_updates=env_updates,
        gpus=gpus,
        progress=note,
    )
    emit(result, as_json=as_json, text=view.registered)
