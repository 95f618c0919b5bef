"""`labshare admin …`: the lab admin's view of the host. Wiring only."""

from __future__ import annotations

import click

from labshare.cli.lazy import LazyGroup


@click.group(
    cls=LazyGroup,
    sections={
        "Commands": {
            "check": "labshare.cli.admin.check:check",
            "notices": "labshare.cli.admin.notices:notices",
            "ports": "labshare.cli.admin.ports:ports",
            "stop": "labshare.cli.admin.stop:stop",
        }
    },
)
def admin() -> None:
    """For the lab's admins: site policy, ports, and stopping a member's server."""
