"""`labshare kernels …`: housekeeping of the kernelspecs Jupyter shows you."""

from __future__ import annotations

import click

from labshare.cli import App
from labshare.cli.options import confirm, json_option, yes_option
from labshare.render import emit, note
from labshare.render import envs as view


@click.group()
def kernels() -> None:
    """Tidy the kernels Jupyter offers you."""


@kernels.command()
@click.option(
    "--foreign", is_flag=True, help="Also remove stale kernelspecs labshare did not make."
)
@yes_option
@json_option
@click.pass_obj
def prune(app: App, foreign: bool, yes: bool, as_json: bool) -> None:
    """Remove kernelspecs whose interpreter or project is gone (labshare's own unless --foreign)."""
    from labshare.envs import kernels as ks

    places = ks.KernelPlaces.current()
    result = ks.plan_prune(places, foreign=foreign)
    if result.candidates:
        note(view.would_prune(result))
        if confirm(f"Remove these {len(result.candidates)} kernelspec(s)?", yes):
            result.removed = ks.prune(places, result.candidates)
    emit(result, as_json=as_json, text=view.pruned)
