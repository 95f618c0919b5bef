"""`labshare info`: `status` plus the token, for `labshare connect` asking over ssh.

Exits 3 when nothing runs, as `status` does.
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
def info(app: App, as_json: bool) -> ExitCode:
    """Everything `status` shows plus the token, user and host (for `labshare connect`)."""
    from labshare.server import status as server

    result = server.info(app.paths)
    emit(result.to_json() if as_json else result, as_json=as_json, text=view.info)
    return ExitCode.OK if result.running else ExitCode.NOT_RUNNING
