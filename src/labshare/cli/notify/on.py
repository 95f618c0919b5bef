"""`labshare notify on`: Notices again, as your [notify] settings say."""

from __future__ import annotations

import click

from labshare.cli import App
from labshare.cli.options import json_option
from labshare.render import emit
from labshare.render import notify as view


@click.command()
@json_option
@click.pass_obj
def on(app: App, as_json: bool) -> None:
    """Notices again, as your [notify] settings say."""
    from labshare.notify import member

    emit(member.switch(app.paths.user_config_file, True), as_json=as_json, text=view.changed)
