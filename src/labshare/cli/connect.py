"""`labshare connect`: the options, Ctrl-C and SIGTERM handed to the session, and its events printed.

Each event is printed as it comes (a JSON line, or one sentence on stderr
with the URL on stdout), so a member sees progress while ssh logs in.  A
failure is raised to `cli.main`, which prints it once, as text or JSON.
"""

from __future__ import annotations

import signal

import click

from labshare.cli import App
from labshare.cli.options import json_option
from labshare.render import emit_event, note


@click.command()
@click.argument("destination", metavar="[USER@]HOST")
@click.option(
    "--local-port",
    type=click.IntRange(1, 65535),
    help="Port on 127.0.0.1 here [default: a free one].",
)
@click.option("--no-browser", is_flag=True, help="Print the URL instead of opening a browser.")
@click.option(
    "--start",
    "start_server",
    is_flag=True,
    help="Start JupyterLab on the server if it is not running.",
)
@click.option(
    "--print",
    "print_only",
    is_flag=True,
    help="Print the plain ssh command and URL (no token) for use without labshare, and exit.",
)
@click.option(
    "-o",
    "ssh_options",
    multiple=True,
    metavar="SSH_OPTION",
    help="An option for ssh, as in `ssh -o` (repeatable).",
)
@json_option
@click.pass_obj
def connect(
    app: App,
    destination: str,
    local_port: int | None,
    no_browser: bool,
    start_server: bool,
    print_only: bool,
    ssh_options: tuple[str, ...],
    as_json: bool,
) -> int:
    """Open your JupyterLab on HOST in a browser here, through ssh, and keep the tunnel up.

    Uses your ssh client and ~/.ssh/config as they are; reconnects by itself
    after wifi drops or sleep; Ctrl-C closes the tunnel, JupyterLab keeps running.
    """
    from labshare.connect import dial
    from labshare.connect.session import Options, Session, manual
    from labshare.render import connect as view
    from labshare.render import jsonable

    options = Options(
        destination=destination,
        local_port=local_port,
        start=start_server,
        open_browser=not no_browser,
        ssh_options=ssh_options,
    )
    if print_only:
        dial.hand_over()
        result = manual(app.paths, options)
        if as_json:
            emit_event({"event": "print", **jsonable(result)})
        else:
            click.echo(view.manual(result))
        return 0

    session = Session(app.paths, options)

    def on_signal(signum: int, _frame: object) -> None:
        session.stop("terminated" if signum == signal.SIGTERM else "interrupted")

    dial.hand_over(on_signal)
    for event in session.events():
        if as_json:
            emit_event(event)
            continue
        line = view.event_line(event)
        if line is None:
            continue
        if event["event"] == "ready" and not event.get("browser"):
            click.echo(line)
        else:
            note(line)
    return 0
