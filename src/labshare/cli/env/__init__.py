"""`labshare env …`: one uv project per piece of work, each a Jupyter kernel. Wiring only."""

from __future__ import annotations

import click

from labshare.cli.env.adopt import adopt
from labshare.cli.env.create import create
from labshare.cli.env.list import list_
from labshare.cli.env.remove import remove


@click.group()
def env() -> None:
    """Per-project Python environments, each registered as its own Jupyter kernel."""


env.add_command(create)
env.add_command(adopt)
env.add_command(list_)
env.add_command(remove)
