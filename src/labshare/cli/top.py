"""`labshare top`: `labshare ps`, refreshed live, sortable by memory, CPU or GPU memory."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

from labshare.cli import App

if TYPE_CHECKING:
    from labshare.monitor.processes import Scanner

KEYS = {"m": "memory", "c": "cpu", "g": "gpu"}


@contextlib.contextmanager
def _keys() -> Iterator[object]:
    """The terminal in cbreak mode (keys arrive without Enter, unechoed), restored on the way out."""
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield fd
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _key(fd: int, timeout: float) -> str | None:
    import os
    import select

    ready, _, _ = select.select([fd], [], [], max(0.0, timeout))
    return os.read(fd, 1).decode(errors="ignore").lower() if ready else None


@click.command()
@click.option("--all-users", "-a", is_flag=True, help="Show everyone's servers, not only yours.")
@click.option("--sort", type=click.Choice(list(KEYS.values())), default="memory", show_default=True,
              help="Biggest first by this figure; keys m, c and g change it while running.")
@click.option("--interval", type=click.FloatRange(0.5, 3600), default=2.0, show_default=True,
              help="Seconds between refreshes.")
@click.option("--once", is_flag=True, help="Print one table and exit (for scripts).")
@click.option("--iterations", "-n", type=click.IntRange(min=1), default=None,
              help="Refresh this many times, then exit.")
@click.pass_obj
def top(app: App, all_users: bool, sort: str, interval: float, once: bool, iterations: int | None) -> None:
    """Watch Jupyter servers and kernels use CPU, memory and GPU memory, live; `q` quits.

    Without a terminal (a pipe, a script) it prints the table once, or
    --iterations times, and exits.
    """
    from labshare.cli.ps import scanner as site_scanner

    scanner = site_scanner(app, all_users)
    if once:
        iterations = 1
    interactive = sys.stdin.isatty() and sys.stdout.isatty() and not once
    if not interactive:
        _print_frames(scanner, sort, interval, iterations or 1)
        return
    _live(scanner, sort, interval, iterations)


def _print_frames(scanner: Scanner, sort: str, interval: float, iterations: int) -> None:
    from labshare.render import monitor as view

    for i in range(iterations):
        if i:
            time.sleep(interval)
            print()
        print(view.ps(scanner.scan(), sort, scanner.may_see_secrets), flush=True)


def _live(scanner: Scanner, sort: str, interval: float, iterations: int | None) -> None:
    from rich.console import Console
    from rich.live import Live

    from labshare.render import monitor as view

    done = 0
    with contextlib.suppress(KeyboardInterrupt), _keys() as fd, Live(
        console=Console(), auto_refresh=False, screen=False, transient=False
    ) as live:
        while iterations is None or done < iterations:
            snap = scanner.scan()
            done += 1
            live.update(view.live(snap, sort, scanner.may_see_secrets), refresh=True)
            if iterations is not None and done >= iterations:
                break
            deadline = time.monotonic() + interval
            while (left := deadline - time.monotonic()) > 0:
                key = _key(fd, left)  # type: ignore[arg-type]
                if key == "q":
                    return
                if key in KEYS:
                    sort = KEYS[key]
                    live.update(view.live(snap, sort, scanner.may_see_secrets), refresh=True)
