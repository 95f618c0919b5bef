"""`labshare logs`: the server's log, the first place to look when it misbehaves."""

from __future__ import annotations

from collections.abc import Callable

import click

from labshare.cli import App
from labshare.cli.options import json_option


@click.command()
@click.option(
    "-n", "--lines", "lines", default=50, show_default=True, help="How many lines to show."
)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@json_option
@click.pass_obj
def logs(app: App, lines: int, follow: bool, as_json: bool) -> None:
    """Show your server's log (Jupyter's output and the supervisor's notes).

    With --json, one JSON object a line (also with -f): time, level, source,
    message and the line as written.
    """
    from labshare.render import emit_event
    from labshare.server import logs as log

    show: Callable[[str], None] = (
        (lambda line: emit_event(log.entry(line))) if as_json else click.echo
    )
    for line in log.last_lines(app.paths.log_file, lines):
        show(line)
    if follow:
        try:
            for line in log.follow(app.paths.log_file):
                show(line)
        except KeyboardInterrupt:
            pass
