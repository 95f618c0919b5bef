"""`labshare notify off`: No notices at all, on any channel, until `labshare notify on`."""

from __future__ import annotations

import click

from labshare.cli import App
from labshare.cli.options import json_option
from labshare.render import emit
from labshare.render import notify as view


@click.command()
@json_option
@click.pass_obj
def off(app: App, as_json: bool) -> None:
    """No notices at all, on any channel, until `labshare notify on`."""
    from labshare.notify import member

    emit(member.switch(app.paths.user_config_file, False), as_json=as_json, text=view.changed)
