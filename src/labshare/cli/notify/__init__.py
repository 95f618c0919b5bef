"""`labshare notify …`: your own channel for notices, and what you want to hear of. Wiring only."""

from __future__ import annotations

import click

from labshare.cli.lazy import LazyGroup


@click.group(
    cls=LazyGroup,
    sections={
        "Commands": {
            "set": "labshare.cli.notify.set:set_",
            "test": "labshare.cli.notify.test:test",
            "status": "labshare.cli.notify.status:status",
            "off": "labshare.cli.notify.off:off",
            "on": "labshare.cli.notify.on:on",
        }
    },
)
def notify() -> None:
    """Notices on your phone or mail when a long cell or run ends, a kernel dies, or a GPU is reclaimed."""
