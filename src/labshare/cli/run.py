"""`labshare run`: a command outside Jupyter (a script in tmux) under a GPU lease, like a kernel."""

from __future__ import annotations

import click

from labshare.cli import App


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option(
    "--gpus",
    "count",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="How many GPUs to lease (0: none visible); default: the site's per_kernel.",
)
@click.argument("argv", nargs=-1, type=click.UNPROCESSED, metavar="-- CMD [ARGS]...")
@click.pass_obj
def run(app: App, count: int | None, argv: tuple[str, ...]) -> int:
    """Run CMD with GPUs leased to it, told by UUID; the lease goes when CMD ends.

    Signals reach CMD, and labshare exits with CMD's exit status; a notice says
    when a long CMD ended (`labshare notify`). Where the site leases no GPUs,
    CMD runs with the cards your kernels see.
    """
    import time

    from labshare.gpus import run as runner
    from labshare.notify import events

    began = time.monotonic()
    status = runner.run(runner.my_policy(app.paths), count, list(argv))
    events.run_finished(app.paths, list(argv), status, time.monotonic() - began)
    return status
