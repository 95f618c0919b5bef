"""`labshare singleuser`: the command JupyterHub's spawner runs for a member (hub-config writes it)."""

from __future__ import annotations

import os

import click

from labshare.cli import App
from labshare.render import note


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=True,
)
@click.argument("jupyter_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def singleuser(app: App, jupyter_args: tuple[str, ...]) -> None:
    """Run your labshare server as JupyterHub's single-user server (JupyterHub runs this, not you).

    `labshare hub-config` names it as the spawner's command.  It gives the
    hub's server what `labshare start` gives yours: your kernels, GPU leases
    per kernel, idle-GPU reclaim, kernels that survive a crash and output
    kept while no browser is open; a `labshare start` server still running is
    stopped and its kernels are adopted.  JUPYTER_ARGS go to Jupyter.
    """
    from labshare.server import hubside

    spawn = hubside.plan(app.paths, os.environ, list(jupyter_args))
    for line in spawn.notes:
        note(line)
    hubside.become(app.paths, spawn, os.environ)
