"""`labshare logs`: the server's log, the first place to look when it misbehaves."""

from __future__ import annotations

import click

from labshare.cli import App


@click.command()
@click.option("-n", "--lines", "lines", default=50, show_default=True, help="How many lines to show.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@click.pass_obj
def logs(app: App, lines: int, follow: bool) -> None:
    """Show your server's log (Jupyter's output and the supervisor's notes)."""
    from labshare.server import logs as log

    for line in log.last_lines(app.paths.log_file, lines):
        click.echo(line)
    if follow:
        try:
            for line in log.follow(app.paths.log_file):
                click.echo(line)
        except KeyboardInterrupt:
            pass
