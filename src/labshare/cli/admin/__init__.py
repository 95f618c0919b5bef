"""`labshare admin …`: the lab admin's view of the host. Wiring only."""

from __future__ import annotations

import importlib

import click

SUBCOMMANDS = {
    "check": "labshare.cli.admin.check:check",
    "ports": "labshare.cli.admin.ports:ports",
    "stop": "labshare.cli.admin.stop:stop",
}


class _Lazy(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in SUBCOMMANDS if self.get_command(ctx, name) is not None]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module, _, attr = SUBCOMMANDS.get(cmd_name, ":").partition(":")
        try:
            return getattr(importlib.import_module(module), attr) if module else None
        except ModuleNotFoundError:
            return None


@click.group(cls=_Lazy)
def admin() -> None:
    """For the lab's admins: site policy, ports, and stopping a member's server."""
