"""`labshare env …`: one uv project per piece of work, each a Jupyter kernel. Wiring only."""

from __future__ import annotations

import click

from labshare.cli.lazy import LazyGroup


@click.group(
    cls=LazyGroup,
    sections={
        "Commands": {
            "adopt": "labshare.cli.env.adopt:adopt",
            "create": "labshare.cli.env.create:create",
            "list": "labshare.cli.env.list:list_",
            "remove": "labshare.cli.env.remove:remove",
        }
    },
)
def env() -> None:
    """Per-project Python environments, each registered as its own Jupyter kernel."""
