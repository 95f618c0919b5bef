"""`labshare ps`: every Jupyter server on this host, its kernels, and what they use."""

from __future__ import annotations

import click

from labshare.cli.options import json_option
from labshare.render import emit


@click.command()
@click.option("--all-users", "-a", is_flag=True, help="Show everyone's servers, not only yours.")
@click.option("--sort", type=click.Choice(["memory", "cpu", "gpu"]), default=None,
              help="Biggest first by this figure (default: by user, then start time).")
@json_option
def ps(all_users: bool, sort: str | None, as_json: bool) -> None:
    """Show Jupyter servers on this host with their kernels, CPU, memory and GPU memory.

    Notebook paths are shown for your own servers (for root: everyone's).
    """
    from labshare.monitor.processes import Scanner
    from labshare.render import monitor as view

    scanner = Scanner(all_users=all_users)
    snap = scanner.scan()
    if as_json:
        emit(snap.servers, as_json=True)
    else:
        emit(snap, as_json=False, text=lambda s: view.ps(s, sort, scanner.may_see_secrets))
