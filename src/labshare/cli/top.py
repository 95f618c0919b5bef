"""`labshare top`: `labshare ps`, refreshed live, sortable by memory, CPU or GPU memory."""

from __future__ import annotations

import contextlib
import itertools
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

from labshare.cli import App
from labshare.cli.options import json_option

if TYPE_CHECKING:
    from labshare.monitor.processes import Scanner, Snapshot

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
@click.option(
    "--sort",
    type=click.Choice(list(KEYS.values())),
    default="memory",
    show_default=True,
    help="Biggest first by this figure; keys m, c and g change it while running.",
)
@click.option(
    "--interval",
    type=click.FloatRange(0.5, 3600),
    default=2.0,
    show_default=True,
    help="Seconds between refreshes.",
)
@click.option(
    "--once", is_flag=True, help="Print one table (or one JSON line) and exit (for scripts)."
)
@click.option(
    "--iterations",
    "-n",
    type=click.IntRange(min=1),
    default=None,
    help="Refresh this many times, then exit.",
)
@json_option
@click.pass_obj
def top(
    app: App,
    all_users: bool,
    sort: str,
    interval: float,
    once: bool,
    iterations: int | None,
    as_json: bool,
) -> None:
    """Watch Jupyter servers and kernels use CPU, memory and GPU memory, live; `q` quits.

    Without a terminal (a pipe, a script) it prints the table once, or
    --iterations times, and exits.  With --json it prints one snapshot a
    line, every --interval, until Ctrl-C (or --once, --iterations); its
    servers are those of `ps --json`.
    """
    from labshare.cli.ps import scanner as site_scanner

    scanner = site_scanner(app, all_users)
    if once:
        iterations = 1
    if as_json:
        _print_json(_frames(scanner, interval, iterations), sort)
        return
    interactive = sys.stdin.isatty() and sys.stdout.isatty() and not once
    if not interactive:
        _print_tables(_frames(scanner, interval, iterations or 1), sort, scanner)
        return
    _live(scanner, sort, interval, iterations)


def _frames(scanner: Scanner, interval: float, iterations: int | None) -> Iterator[Snapshot]:
    """A snapshot now, then one every `interval` seconds, `iterations` in all (None: until Ctrl-C)."""
    for i in itertools.count() if iterations is None else range(iterations):
        if i:
            time.sleep(interval)
        yield scanner.scan()


def _print_tables(frames: Iterator[Snapshot], sort: str, scanner: Scanner) -> None:
    from labshare.render import monitor as view

    for i, snap in enumerate(frames):
        if i:
            print()
        print(view.ps(snap, sort, scanner.may_see_secrets), flush=True)


def _print_json(frames: Iterator[Snapshot], sort: str) -> None:
    from labshare.monitor.frame import frame
    from labshare.render import emit_event

    with contextlib.suppress(KeyboardInterrupt):
        for snap in frames:
            emit_event(frame(snap, sort))


def _live(scanner: Scanner, sort: str, interval: float, iterations: int | None) -> None:
    from rich.console import Console
    from rich.live import Live

    from labshare.render import monitor as view

    done = 0
    with (
        contextlib.suppress(KeyboardInterrupt),
        _keys() as fd,
        Live(console=Console(), auto_refresh=False, screen=False, transient=False) as live,
    ):
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
