"""`labshare gpus`: every card on this host, who leases it, and who uses one without a lease."""

from __future__ import annotations

import click

from labshare.cli import App
from labshare.cli.options import json_option
from labshare.render import emit


@click.command()
@click.option(
    "--history",
    "show_history",
    is_flag=True,
    help="Show the kernels whose idle GPUs were reclaimed (yours; for root: everyone's).",
)
@json_option
@click.pass_obj
def gpus(app: App, show_history: bool, as_json: bool) -> None:
    """Show each GPU (index, UUID, memory, utilisation), its leases, and GPU processes without one.

    Everyone's leases and processes are shown; how long a kernel has been
    idle, its notebook and when idle reclaim takes its card only for your own
    (for root: everyone's idle time and notebooks).
    """
    import os

    from labshare import config
    from labshare.gpus import history
    from labshare.monitor import gpu_report
    from labshare.monitor.processes import Scanner
    from labshare.render import gpu_report as view

    state_dir = app.paths.state_dir
    if show_history:
        files = history.everyones(state_dir) if os.geteuid() == 0 else [state_dir / history.HISTORY]
        emit(history.read(files), as_json=as_json, text=view.history)
        return
    settings = config.load_site(app.paths.site_config).gpus
    # Only the servers whose notebooks the caller may see are asked; every lease and process is read.
    scanner = Scanner(
        all_users=os.geteuid() == 0,
        everyones_gpu_processes=True,
        interval=0.0,
        leases_dir=settings.leases_dir,
        leasing=settings.leased,
    )
    emit(
        gpu_report.build(scanner.scan(), settings, notices=history.warnings(state_dir)),
        as_json=as_json,
        text=lambda report: view.report(report, scanner.may_see_secrets),
    )
