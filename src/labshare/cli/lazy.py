"""The one way a labshare command group is wired: subcommands named by import path.

A subcommand's module is imported only when that subcommand runs (or help
lists it), so `labshare status` pays for nothing else.  When a module cannot
be imported because a package labshare needs is missing, the command is
still listed, and running it says which module is missing and what to do,
instead of click's "No such command" that hides the cause.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from labshare.errors import LabshareError
from labshare.install_hint import reinstall_hint

# Modules every Unix Python has and Windows' has not: missing, they mean a server command on a laptop.
POSIX_ONLY = frozenset({"pwd", "grp", "fcntl", "termios", "resource"})


def missing_module(exc: ModuleNotFoundError, command: str) -> LabshareError:
    """The one line for a broken installation: which module is missing, and how to mend it."""
    name = exc.name or str(exc)
    if name in POSIX_ONLY:
        return LabshareError(
            f"`{command}` runs on the lab's Linux server, not on this computer (its Python "
            f"has no {name!r} module); here, use `labshare connect HOST` or `labshare doctor HOST`."
        )
    return LabshareError(
        f"`{command}` cannot run: the Python module {name!r} is missing; "
        f"reinstall labshare: {reinstall_hint()}."
    )


def _unavailable(name: str, exc: ModuleNotFoundError) -> click.Command:
    """Stands in for a command whose module cannot be imported: listed, and one error when run."""

    def run(**_: Any) -> None:
        raise missing_module(exc, click.get_current_context().command_path) from exc

    return click.Command(
        name,
        callback=run,
        add_help_option=False,
        short_help=f"(unavailable: module {exc.name!r} is missing)",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


class LazyGroup(click.Group):
    """A group whose subcommands are `"module:attribute"` paths, shown in titled help sections.

    `sections` maps a help heading to the commands under it, in the order
    help shows them; a group with one section (titled "Commands") shows
    click's usual list.
    """

    def __init__(self, *args: Any, sections: dict[str, dict[str, str]], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.sections = sections
        self.lazy = {name: path for group in sections.values() for name, path in group.items()}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.lazy)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in self.lazy:
            return self.commands.get(cmd_name)
        module, _, attr = self.lazy[cmd_name].partition(":")
        try:
            cmd = getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as exc:
            cmd = _unavailable(cmd_name, exc)
        self.add_command(cmd, cmd_name)
        return cmd

    def invoke(self, ctx: click.Context) -> Any:
        """A module a command imports as it runs, found missing, means the same broken install."""
        try:
            return super().invoke(ctx)
        except ModuleNotFoundError as exc:
            command = " ".join(filter(None, (ctx.command_path, ctx.invoked_subcommand)))
            raise missing_module(exc, command) from exc

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if len(self.sections) == 1:
            return super().format_commands(ctx, formatter)
        for title, names in self.sections.items():
            rows = []
            for name in names:
                cmd = self.get_command(ctx, name)
                if cmd is not None and not cmd.hidden:
                    rows.append((name, cmd.get_short_help_str(limit=formatter.width - 20)))
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)
