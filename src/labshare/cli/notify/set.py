"""`labshare notify set URL [--min-duration D]`: your own channel, an apprise URL, kept in your 0600 config."""

from __future__ import annotations

import click

from labshare.cli import App
from labshare.cli.options import json_option
from labshare.render import emit
from labshare.render import notify as view


@click.command("set")
@click.argument("url")
@click.option(
    "--min-duration",
    metavar="D",
    default=None,
    help='Only cells and runs longer than this, e.g. "90s", "10m" (default 5m).',
)
@json_option
@click.pass_obj
def set_(app: App, url: str, min_duration: str | None, as_json: bool) -> None:
    """Send your notices to URL (ntfy://ntfy.sh/TOPIC, mailto://..., any apprise URL)."""
    from labshare.notify import member

    emit(
        member.set_channel(app.paths.user_config_file, url, min_duration),
        as_json=as_json,
        text=view.changed,
    )
