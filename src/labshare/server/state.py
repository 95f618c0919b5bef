"""The member's server record: one JSON file, written atomically under a lock.

Both the CLI and the detached supervisor write it, so every write takes the
lock; readers never lock, since a rename is atomic.  A record whose
processes are gone (reboot, SIGKILL) is *stale*; one that does not parse is
*corrupt* and is moved aside rather than ignored.  The file's format is
`records.server.ServerState`; its store (`records.store`) does the rest.
The launch spec beside it is the supervisor's, through the same store.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator

from labshare.paths import Paths
from labshare.records.server import HubServer, LaunchSpec, ServerState
from labshare.records.store import Store
from labshare.records.store import locked as lock_file


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _store(paths: Paths) -> Store[ServerState]:
    return Store(paths.state_file, ServerState, "the state file")


def launch_store(paths: Paths) -> Store[LaunchSpec]:
    """launch.json: written by `start`, read by the supervisor at each (re)start and by `doctor`."""
    return Store(paths.launch_file, LaunchSpec, "the launch spec")


def hub_store(paths: Paths) -> Store[HubServer]:
    """hub_server.json: the member's server that JupyterHub spawned here, kept by its supervisor."""
    return Store(paths.hub_server_file, HubServer, "the hub server record")


def hub_launch_store(paths: Paths) -> Store[LaunchSpec]:
    """hub_launch.json: what `labshare singleuser` hands its supervisor, the hub's launch spec."""
    return Store(paths.hub_launch_file, LaunchSpec, "the hub launch spec")


def load(paths: Paths) -> ServerState | None:
    """The record, or None if there is none; a corrupt one is moved aside and reported."""
    return _store(paths).read()


def save(paths: Paths, state: ServerState) -> None:
    _store(paths).write(state)


def clear(paths: Paths) -> None:
    _store(paths).clear()


@contextlib.contextmanager
def locked(paths: Paths, timeout: float = 30.0) -> Iterator[None]:
    """Hold the per-host server lock; parallel `start`s queue here so only one server is made."""
    with lock_file(paths.lock_file, timeout):
        yield


def process_started(pid: int) -> float | None:
    """The start time of `pid` (seconds since boot, from /proc), or None if it is gone.

    Stored next to each pid so a recycled pid is never taken for our process.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    if fields[0] == b"Z":
        return None
    return int(fields[19]) / os.sysconf("SC_CLK_TCK")


def alive(pid: int | None, started: float | None) -> bool:
    if not pid:
        return False
    now = process_started(pid)
    return now is not None and (started is None or abs(now - started) < 0.05)
