"""The `labshare` command: wiring, grouped help, and the one place errors are printed.

Subcommand modules are imported only when their command runs, so a quick
command such as `labshare status` pays for nothing else.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass

import click

from labshare import __version__
from labshare.errors import LabshareError
from labshare.paths import Paths

# name -> (help section, "module:attribute")
COMMANDS: dict[str, tuple[str, str]] = {
    "start": ("server", "labshare.cli.start:start"),
    "stop": ("server", "labshare.cli.stop:stop"),
    "restart": ("server", "labshare.cli.restart:restart"),
    "status": ("server", "labshare.cli.status:status"),
    "info": ("server", "labshare.cli.info:info"),
    "logs": ("server", "labshare.cli.logs:logs"),
    "env": ("server", "labshare.cli.env:env"),
    "kernels": ("server", "labshare.cli.kernels:kernels"),
    "ps": ("server", "labshare.cli.ps:ps"),
    "top": ("server", "labshare.cli.top:top"),
    "doctor": ("server", "labshare.cli.doctor:doctor"),
    "connect": ("laptop", "labshare.cli.connect:connect"),
    "completion": ("laptop", "labshare.cli.completion:completion"),
    "admin": ("admin", "labshare.cli.admin:admin"),
    "hub-config": ("admin", "labshare.cli.hub_config:hub_config"),
}

SECTIONS = {
    "server": "Member, on the server",
    "laptop": "Member, on the laptop",
    "admin": "Admin",
}


@dataclass(frozen=True)
class App:
    """What every command receives: paths resolved once, and the debug flag."""

    paths: Paths
    debug: bool


class LabshareGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module, _, attr = entry[1].partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError:
            return None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        for key, title in SECTIONS.items():
            rows = []
            for name, (section, _) in COMMANDS.items():
                if section != key:
                    continue
                cmd = self.get_command(ctx, name)
                if cmd is not None and not cmd.hidden:
                    rows.append((name, cmd.get_short_help_str(limit=formatter.width - 20)))
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


@click.group(cls=LabshareGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="labshare")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Your own secure, always-on JupyterLab on the lab's shared server.

    On the server: `labshare start`, then `labshare status`.
    On your laptop: `labshare connect USER@HOST` opens it in your browser.
    """
    ctx.obj = App(paths=Paths.from_env(), debug=debug)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        result = cli.main(args=args, prog_name="labshare", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except LabshareError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        from labshare.render import error

        error(exc.message, exc.detail)
        code = exc.exit_code
    except click.exceptions.Abort:
        print("Aborted.", file=sys.stderr)
        code = 130
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:  # a bug: say so in one line unless asked for details
        if debug:
            import traceback

            traceback.print_exc()
        print(
            f"labshare: internal error: {type(exc).__name__}: {exc} "
            "(run again with --debug for the traceback and report it)",
            file=sys.stderr,
        )
        code = 70
    sys.stdout.flush()
    sys.exit(code)
