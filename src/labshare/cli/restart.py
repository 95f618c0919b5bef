"""`labshare restart`: a new server (after an upgrade) with the same address and token.

Open tabs reconnect by themselves and running kernels carry over.
"""

from __future__ import annotations

import click

from labshare.cli import App
from labshare.cli.options import json_option
from labshare.render import emit
from labshare.render import server as view


@click.command()
@click.option(
    "--timeout", default=120.0, show_default=True, help="Seconds to wait for Jupyter to answer."
)
@click.option(
    "--keep-kernels/--no-keep-kernels",
    default=True,
    show_default=True,
    help="Carry running kernels (and their variables) over to the new server.",
)
@json_option
@click.pass_obj
def restart(app: App, timeout: float, keep_kernels: bool, as_json: bool) -> None:
    """Restart your JupyterLab (e.g. after an upgrade) with the same folder, address and token.

    Running kernels keep running and are taken over by the new server, with
    the same ids and notebook sessions.
    """
    from labshare.server import lifecycle

    result = lifecycle.restart(app.paths, timeout=timeout, keep_kernels=keep_kernels)
    emit(result, as_json=as_json, text=view.started)
