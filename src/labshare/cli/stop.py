from __future__ import annotations

import click

from labshare.cli import App
from labshare.cli.options import json_option
from labshare.render import emit
from labshare.render import server as view


@click.command()
@json_option
@click.pass_obj
def stop(app: App, as_json: bool) -> None:
    """Stop your JupyterLab cleanly: kernels are shut down and files cleaned up."""
    from labshare.server import lifecycle

    emit(lifecycle.stop(app.paths), as_json=as_json, text=view.stopped)
