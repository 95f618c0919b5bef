"""`labshare connect`: the options, Ctrl-C and SIGTERM handed to the session, and its events printed.

Each event is printed as it comes (a JSON line, or one sentence on stderr
with the URL on stdout), so a member sees progress while ssh logs in.  A
failure is raised to `cli.main`, which prints it once, as text or JSON.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from labshare.cli import App
from labshare.cli.options import json_option, ssh_option
from labshare.errors import HostUnreachable, NotRunning
from labshare.render import emit_event, note

if TYPE_CHECKING:
    from labshare.connect.session import Options, Session


@click.command()
@click.argument("destination", metavar="[USER@]HOST")
@click.option(
    "--gpus",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="With a GROUP: pick a server where you can get N GPUs now [default: 0].",
)
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
@ssh_option
@json_option
@click.pass_obj
def connect(
    app: App,
    destination: str,
    gpus: int | None,
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
    With a GROUP (see `labshare fleet`): the server where your JupyterLab
    runs, else one where you can get `--gpus N` now, least loaded first;
    started there if needed.
    """
    from labshare.connect import dial
    from labshare.connect.session import Options, manual
    from labshare.render import connect as view
    from labshare.render import jsonable

    group = None
    if "@" not in destination:
        from labshare.fleet import pick

        if pick.is_group(app.paths, destination):
            group = destination
        elif gpus is not None:
            from labshare.errors import ExitCode, LabshareError

            raise LabshareError(
                f"--gpus picks a server of a group, and {destination!r} is one host; "
                "leave --gpus out, or name a group (see `labshare fleet`).",
                exit_code=ExitCode.USAGE,
            )
    options = Options(
        destination=destination,
        local_port=local_port,
        start=start_server,
        open_browser=not no_browser,
        ssh_options=ssh_options,
    )
    if group is not None:
        dial.hand_over()  # Ctrl-C while the group is asked ends the command at once
        return _connect_group(app, group, gpus or 0, options, as_json, print_only)
    if print_only:
        dial.hand_over()
        result = manual(app.paths, options)
        if as_json:
            emit_event({"event": "print", **jsonable(result)})
        else:
            click.echo(view.manual(result))
        return 0
    return _run(app, options, as_json)


def _run(
    app: App, options: Options, as_json: bool, on_ready: Callable[[Session], None] | None = None
) -> int:
    """One Session from start to Ctrl-C, each event printed as it comes."""
    from labshare.connect import dial
    from labshare.connect.session import Session
    from labshare.render import connect as view

    session = Session(app.paths, options)

    def on_signal(signum: int, _frame: object) -> None:
        session.stop("terminated" if signum == signal.SIGTERM else "interrupted")

    dial.hand_over(on_signal)
    for event in session.events():
        if event["event"] == "ready" and on_ready is not None:
            on_ready(session)
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


def _connect_group(
    app: App, name: str, gpus: int, options: Options, as_json: bool, print_only: bool
) -> int:
    """`connect GROUP`: the server remembered from the last time while the Lab still runs there, else
    the one the group's answers choose (started there when needed)."""
    import dataclasses

    from labshare.connect import known
    from labshare.connect.session import manual
    from labshare.errors import LabshareError
    from labshare.fleet import pick
    from labshare.render import connect as view
    from labshare.render import jsonable

    memory = known.LastChoice(str(app.paths.state_root), name, options.ssh_options)
    last = (
        None
        if print_only
        else pick.last_choice(app.paths, name, memory.load(), options.ssh_options)
    )
    if last is not None:
        # Rule one (the Lab runs there) checked through the tunnel itself, without asking the group;
        # said once it answers, since until then it may not be the choice.
        chosen_event = {
            "event": "chosen",
            "group": name,
            "host": last,
            "gpus": gpus,
            "reason": "your JupyterLab runs there (your last connect to it)",
        }
        ready: list[bool] = []

        def on_ready(session: Session) -> None:
            ready.append(True)
            _said(as_json, chosen_event)
            # From now on as any `connect GROUP`: a server that stops is started again while healing.
            session.options = dataclasses.replace(session.options, start=True)

        session_options = dataclasses.replace(options, destination=last, start=False)
        try:
            return _run(app, session_options, as_json, on_ready=on_ready)
        except LabshareError as exc:
            if ready or not isinstance(exc, (NotRunning, HostUnreachable)):
                raise
            memory.forget()
            _said(
                as_json, {"event": "note", "host": last, "message": f"{exc.message} Asking {name}."}
            )
    destination = _pick(app, name, gpus, options.ssh_options, as_json)
    chosen = dataclasses.replace(options, destination=destination, start=True)
    if print_only:
        result = manual(app.paths, chosen)
        if as_json:
            emit_event({"event": "print", **jsonable(result)})
        else:
            click.echo(view.manual(result))
        return 0
    return _run(app, chosen, as_json, on_ready=lambda _session: memory.save(destination))


def _said(as_json: bool, event: dict[str, object]) -> None:
    from labshare.render import connect as view

    if as_json:
        emit_event(event)
    else:
        note(view.event_line(event) or "")


def _pick(app: App, name: str, gpus: int, ssh_options: tuple[str, ...], as_json: bool) -> str:
    """The server of group `name` to open, said in one line; with no room, the table and the sentence."""
    from labshare.fleet import pick
    from labshare.render import connect as view
    from labshare.render import fleet as table

    try:
        picked = pick.pick(app.paths, name, gpus, ssh_options=ssh_options)
    except pick.NoRoom as exc:
        if as_json:
            emit_event({"event": "fleet", **jsonable_report(exc.table)})
        else:
            click.echo(table.report(exc.table))
        raise
    event = {
        "event": "chosen",
        "group": picked.group.name,
        "host": picked.choice.host,
        "reason": picked.choice.reason,
        "gpus": gpus,
    }
    if as_json:
        emit_event(event)
    else:
        note(view.event_line(event) or "")
    return picked.choice.host


def jsonable_report(report: object) -> dict[str, object]:
    from labshare.render import jsonable

    data = jsonable(report)
    assert isinstance(data, dict)
    return data
