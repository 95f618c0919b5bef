"""`labshare admin stop USER`: end a member's forgotten server cleanly, as root."""

from __future__ import annotations

import os

import click

from labshare.cli.options import confirm, json_option, yes_option
from labshare.errors import ExitCode, LabshareError
from labshare.render import emit, note


@click.command()
@click.argument("user")
@yes_option
@json_option
def stop(user: str, yes: bool, as_json: bool) -> ExitCode:
    """Stop USER's JupyterLab and kernels on this host (root only); shows what ran first.

    A labshare server is stopped by USER's own `labshare stop`, run as them,
    so kernels shut down and their state is cleaned; a Jupyter started by hand
    is sent SIGTERM, then SIGKILL.
    """
    if os.geteuid() != 0:
        raise LabshareError(
            "`labshare admin stop` ends another member's processes, so it needs root; "
            f"run it as `sudo labshare admin stop {user}`."
        )
    from labshare.monitor import stop as admin
    from labshare.render import monitor as view

    result = admin.running(user)
    if not result.found:
        emit(result, as_json=as_json, text=view.admin_stop)
        return ExitCode.OK
    if not yes:
        note(view.admin_plan(user, result.found))
    if not confirm(f"Stop everything {user} runs above?", yes):
        note("Nothing was stopped.")
        return ExitCode.FAILED
    admin.stop(result)
    emit(result, as_json=as_json, text=view.admin_stop)
    return ExitCode.FAILED if result.left else ExitCode.OK
