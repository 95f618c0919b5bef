"""`labshare notify test`: a test notice through the same outbox and sender as every other."""

from __future__ import annotations

import click

from labshare.cli import App
from labshare.cli.options import json_option
from labshare.errors import ExitCode
from labshare.render import emit
from labshare.render import notify as view


@click.command()
@json_option
@click.pass_obj
def test(app: App, as_json: bool) -> ExitCode:
    """Send a test notice to each of your channels and say what each answered."""
    from labshare.notify import status

    result = status.test(app.paths)
    emit(result, as_json=as_json, text=view.tested)
    ok = all(answer == "sent" for answer in result.delivered.values())
    return ExitCode.OK if ok else ExitCode.FAILED
