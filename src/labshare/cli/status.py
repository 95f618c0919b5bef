from __future__ import annotations

import click

from labshare.cli import App
from labshare.cli.options import json_option
from labshare.render import emit
from labshare.render import server as view

NOT_RUNNING = 3  # as `systemctl status` and LSB init scripts


@click.command()
@json_option
@click.pass_obj
def status(app: App, as_json: bool) -> int:
    """Show whether your JupyterLab runs, where it listens, and what it is doing.

    Exits 0 when it runs and 3 when it does not.
    """
    from labshare.server import status as server

    result = server.status(app.paths)
    emit(result, as_json=as_json, text=view.status)
    return 0 if result.running else NOT_RUNNING
