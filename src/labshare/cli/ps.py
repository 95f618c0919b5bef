"""`labshare ps`: every Jupyter server on this host, its kernels, and what they use."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from labshare.cli import App
from labshare.cli.options import json_option
from labshare.errors import LabshareError
from labshare.render import emit, note

if TYPE_CHECKING:
    from labshare.monitor.processes import Scanner


def scanner(app: App, all_users: bool) -> Scanner:
    """A scanner that reads the GPU leases where the site config keeps them.

    `ps` must still work for an admin whose site config is broken: it then
    shows no leases and says why, on stderr.
    """
    from labshare import config
    from labshare.monitor.processes import Scanner

    try:
        settings = config.load_site(app.paths.site_config).gpus
    except LabshareError as exc:
        note(f"GPU leases are not shown: {exc.message}")
        return Scanner(all_users=all_users)
    return Scanner(all_users=all_users, leases_dir=settings.leases_dir, leasing=settings.leased)


@click.command()
@click.option("--all-users", "-a", is_flag=True, help="Show everyone's servers, not only yours.")
@click.option(
    "--sort",
    type=click.Choice(["memory", "cpu", "gpu"]),
    default=None,
    help="Biggest first by this figure (default: by user, then start time).",
)
@json_option
@click.pass_obj
def ps(app: App, all_users: bool, sort: str | None, as_json: bool) -> None:
    """Show Jupyter servers on this host with their kernels, CPU, memory, GPU memory and GPU leases.

    Notebook paths are shown for your own servers (for root: everyone's).
    """
    from labshare.render import monitor as view

    scan = scanner(app, all_users)
    snap = scan.scan()
    if as_json:
        emit(snap.servers, as_json=True)
    else:
        emit(snap, as_json=False, text=lambda s: view.ps(s, sort, scan.may_see_secrets))
