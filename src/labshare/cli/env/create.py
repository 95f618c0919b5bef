"""`labshare env create NAME [PACKAGES]`: a new uv project, registered as a kernel."""

from __future__ import annotations

from pathlib import Path

import click

from labshare.cli import App
from labshare.cli.options import env_option, gpus_option, json_option
from labshare.render import emit, note
from labshare.render import envs as view


@click.command()
@click.argument("name")
@click.argument("packages", nargs=-1)
@click.option(
    "--path",
    "path",
    type=click.Path(path_type=Path),
    help="Project folder [default: ~/projects/NAME, the folder your JupyterLab serves].",
)
@click.option(
    "--python",
    "python",
    metavar="VERSION",
    help="Python version or interpreter for the env [default: the Python labshare runs on].",
)
@env_option
@gpus_option
@json_option
@click.pass_obj
def create(
    app: App,
    name: str,
    packages: tuple[str, ...],
    path: Path | None,
    python: str | None,
    env_pairs: tuple[str, ...],
    gpus: int | None,
    as_json: bool,
) -> None:
    """Make a uv project NAME with ipykernel and PACKAGES, and register it as a Jupyter kernel.

    A running JupyterLab offers the new kernel at once; no restart needed.
    """
    from labshare.envs import kernels, projects

    result = projects.create(
        kernels.KernelPlaces.current(),
        app.paths.home / "projects",
        name,
        path=path,
        python=python,
        packages=packages,
        env_updates=projects.parse_env_pairs(env_pairs),
        gpus=gpus,
        progress=note,
    )
    emit(result, as_json=as_json, text=view.registered)
