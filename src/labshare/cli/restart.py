from __future__ import annotations

import click

from labshare.cli import App
from labshare.cli.options import json_option
from labshare.render import emit
from labshare.render import server as view


@click.command()
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for Jupyter to answer.")
@json_option
@click.pass_obj
def restart(app: App, timeout: float, as_json: bool) -> None:
    """Restart your JupyterLab with the same folder, address and token."""
    from labshare.server import lifecycle

    emit(lifecycle.restart(app.paths, timeout=timeout), as_json=as_json, text=view.started)
