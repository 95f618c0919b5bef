"""`labshare admin check`: is the site config valid, and what does it mean for each member?

Exits 1 when a member it names has no account here, a typo an admin wants to hear of.
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
def check(app: App, as_json: bool) -> ExitCode:
    """Validate the site config and show the effective policy of every member."""
    from labshare import audit

    result = audit.check(app.paths.site_config)
    emit(result, as_json=as_json, text=view.check)
    return ExitCode.FAILED if any(not m.has_account for m in result.members) else ExitCode.OK
