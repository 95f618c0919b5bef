"""`labshare admin ports`: who was given which port, and who is listening on it now.

Exits 1 on a conflict: better found here than by a member's failing `start`.
"""

from __future__ import annotations

import click

from labshare.cli import App
from labshare.cli.options import json_option
from labshare.errors import ExitCode
from labshare.render import emit
from labshare.render import site as view


@click.command()
@json_option
@click.pass_obj
def ports(app: App, as_json: bool) -> ExitCode:
    """Port assignments and claims, and who is listening on each right now."""
    from labshare import audit

    rows = audit.port_table(app.paths.site_config)
    emit(rows, as_json=as_json, text=view.ports)
    return ExitCode.FAILED if any(r.conflict for r in rows) else ExitCode.OK
