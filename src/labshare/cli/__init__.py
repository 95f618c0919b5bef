"""The `labshare` command: wiring, grouped help, and the one place errors are printed.

Subcommand modules are imported only when their command runs (cli/lazy.py),
so a quick command such as `labshare status` pays for nothing else.  A
failure is printed once, here, in the face the command was asked for: a
`labshare: error: ...` line on stderr, or with `--json` one JSON object on
stdout (for `connect --json`, whose output is a stream of events, one
`error` event; for `logs` and `top`, whose output is one record a line, the
same object on one line), with the same exit code either way.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import click

from labshare import __version__, render
from labshare.cli.lazy import LazyGroup
from labshare.errors import ExitCode, LabshareError
from labshare.paths import Paths

SECTIONS: dict[str, dict[str, str]] = {
    "Member, on the server": {
        "start": "labshare.cli.start:start",
        "stop": "labshare.cli.stop:stop",
        "restart": "labshare.cli.restart:restart",
        "status": "labshare.cli.status:status",
        "info": "labshare.cli.info:info",
        "logs": "labshare.cli.logs:logs",
        "env": "labshare.cli.env:env",
        "kernels": "labshare.cli.kernels:kernels",
        "ps": "labshare.cli.ps:ps",
        "top": "labshare.cli.top:top",
        "gpus": "labshare.cli.gpus:gpus",
        "run": "labshare.cli.run:run",
        "doctor": "labshare.cli.doctor:doctor",
        "notify": "labshare.cli.notify:notify",
    },
    "Member, on the laptop": {
        "connect": "labshare.cli.connect:connect",
        "fleet": "labshare.cli.fleet:fleet",
        "completion": "labshare.cli.completion:completion",
    },
    "Admin": {
        "admin": "labshare.cli.admin:admin",
        "hub-config": "labshare.cli.hub_config:hub_config",
    },
    "Run by JupyterHub": {
        "singleuser": "labshare.cli.singleuser:singleuser",
    },
}
STREAMING = frozenset({"connect"})  # commands whose --json output is JSON lines, one event each
LINES = frozenset({"logs", "top"})  # commands whose --json output is JSON lines, one record each
INTERNAL_HINT = "(run again with --debug for the traceback and report it)"
# Failures whose message says it all: no traceback even with --debug.
NO_TRACEBACK = (click.ClickException, click.exceptions.Abort, KeyboardInterrupt)


@dataclass(frozen=True)
class App:
    """What every command receives: paths resolved once, and the debug flag."""

    paths: Paths
    debug: bool


@click.group(
    cls=LazyGroup, sections=SECTIONS, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(__version__, "-V", "--version", prog_name="labshare")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Your own secure, always-on JupyterLab on the lab's shared server.

    On the server: `labshare start`, then `labshare status`.
    On your laptop: `labshare connect USER@HOST` opens it in your browser.
    """
    ctx.obj = App(paths=Paths.from_env(), debug=debug)


def face(args: list[str]) -> str:
    """ "text", "json", "events" or "lines", read from the words, since a usage error comes before parsing.

    The top-level options take no value, so the first word not starting
    with "-" is the command; words after "--" are never options.
    """
    words = args[: args.index("--")] if "--" in args else args
    if "--json" not in words:
        return "text"
    command = next((w for w in words if not w.startswith("-")), None)
    if command in STREAMING:
        return "events"
    return "lines" if command in LINES else "json"


def explain(exc: BaseException) -> tuple[str, str | None, int]:
    """The message, detail and exit code of any failure, for either face."""
    if isinstance(exc, LabshareError):
        return exc.message, exc.detail, exc.exit_code
    if isinstance(exc, (click.exceptions.Abort, KeyboardInterrupt)):
        return "Aborted.", None, ExitCode.INTERRUPTED
    if isinstance(exc, click.ClickException):
        ctx = getattr(exc, "ctx", None)
        return exc.format_message(), ctx.get_usage() if ctx else None, exc.exit_code
    return f"internal error: {type(exc).__name__}: {exc} {INTERNAL_HINT}", None, ExitCode.INTERNAL


def show_text(exc: BaseException, message: str, detail: str | None) -> None:
    """The text face, on stderr: click's usage errors, labshare's one line, nothing for Ctrl-C."""
    if isinstance(exc, click.ClickException):
        exc.show()
    elif isinstance(exc, LabshareError):
        render.error(message, detail)
    elif isinstance(exc, click.exceptions.Abort):
        print(message, file=sys.stderr)
    elif not isinstance(exc, KeyboardInterrupt):
        print(f"labshare: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    try:
        result = cli.main(args=args, prog_name="labshare", standalone_mode=False)
        code = result if isinstance(result, int) else ExitCode.OK
    except (Exception, KeyboardInterrupt) as exc:  # a bug too: one line unless asked for details
        if "--debug" in args and not isinstance(exc, NO_TRACEBACK):
            import traceback

            traceback.print_exc()
        message, detail, code = explain(exc)
        shown = face(args)
        if shown == "text":
            show_text(exc, message, detail)
        else:
            render.failure(message, code, detail, face=shown)
    sys.stdout.flush()
    sys.exit(code)
