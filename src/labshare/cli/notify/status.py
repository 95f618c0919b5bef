"""`labshare notify status [--json]`: your channels, the last delivery, failures, expired notices."""

from __future__ import annotations

import click

from labshare.cli import App
from labshare.cli.options import json_option
from labshare.render import emit
from labshare.render import notify as view


@click.command()
@json_option
@click.pass_obj
def status(app: App, as_json: bool) -> None:
    """Show where your notices go and how their delivery went."""
    from labshare.notify import status as notify_status

    emit(notify_status.status(app.paths), as_json=as_json, text=view.status)
