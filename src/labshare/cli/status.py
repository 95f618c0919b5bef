"""`labshare status`: is it running, and where?  Quick on purpose, and scriptable.

Exits 3 when nothing runs (ExitCode.NOT_RUNNING, as `systemctl status`).
"""

from __future__ import annotations

import click

from labshare.cli import App
from labshare.cli.options import json_option
from labshare.errors import ExitCode
from labshare.render import emit
from labshare.render import server as view


@click.command()
@json_option
@click.pass_obj
def status(app: App, as_json: bool) -> ExitCode:
    """Show whether your JupyterLab runs, where it listens, and what it is doing.

    Exits 0 when it runs and 3 when it does not.
    """
    from labshare.server import status as server

    result = server.status(app.paths)
    emit(result, as_json=as_json, text=view.status)
    return ExitCode.OK if result.running else ExitCode.NOT_RUNNING
