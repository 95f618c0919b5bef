"""`labshare stop`: a clean shutdown, so kernels end and no socket or token is left behind."""

from __future__ import annotations

import click

from labshare.cli import App
from labshare.cli.options import json_option
from labshare.render import emit
from labshare.render import server as view


@click.command()
@click.option(
    "--keep-kernels", is_flag=True, help="Leave running kernels for the next `labshare start`."
)
@json_option
@click.pass_obj
def stop(app: App, keep_kernels: bool, as_json: bool) -> None:
    """Stop your JupyterLab cleanly: kernels are shut down and files cleaned up."""
    from labshare.server import lifecycle

    emit(lifecycle.stop(app.paths, keep_kernels=keep_kernels), as_json=as_json, text=view.stopped)
