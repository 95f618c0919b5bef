from __future__ import annotations

import click

from labshare.cli import App
from labshare.cli.options import json_option
from labshare.render import emit
from labshare.render import site as view


@click.command()
@json_option
@click.pass_obj
def ports(app: App, as_json: bool) -> int:
    """Port assignments and claims, and who is listening on each right now."""
    from labshare import audit

    rows = audit.port_table(app.paths.site_config)
    emit(rows, as_json=as_json, text=view.ports)
    return 1 if any(r.conflict for r in rows) else 0
