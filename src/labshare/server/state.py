"""The member's server record: one JSON file, written atomically under a lock.

Both the CLI and the detached supervisor write it, so every write takes the
lock; readers never lock, since a rename is atomic.  A record whose
processes are gone (reboot, SIGKILL) is *stale*; one that does not parse is
*corrupt* and is moved aside rather than ignored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from labshare.errors import LabshareError
from labshare.files import write_atomic
from labshare.paths import Paths

SCHEMA = 1


@dataclass
class ServerState:
    supervisor_pid: int
    supervisor_started: float
    mode: str
    root_dir: str
    socket: str | None
    port: int | None
    started_at: str
    pid: int | None = None
    pid_started: float | None = None
    restarts: int = 0
    socket_fallback: bool = False
    failed: str | None = None
    limits: dict[str, object] = field(default_factory=dict)
    limits_enforced: bool = True
    keep_outputs: bool | None = None
    schema: int = SCHEMA
    extra: dict[str, object] = field(default_factory=dict)


class CorruptState(LabshareError):
    pass


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def load(paths: Paths) -> ServerState | None:
    """The record, or None if there is none; a corrupt one is moved aside and reported."""
    try:
        raw = paths.state_file.read_bytes()
    except FileNotFoundError:
        return None
    except PermissionError as exc:
        raise LabshareError(
            f"Cannot read {paths.state_file} (permission denied); it must belong to you."
        ) from exc
    try:
        data = json.loads(raw)
        known = {f.name for f in dataclasses.fields(ServerState)}
        return ServerState(**{k: v for k, v in data.items() if k in known})
    except (ValueError, TypeError) as exc:
        aside = paths.state_file.with_name(f"server.json.corrupt-{int(time.time())}")
        os.replace(paths.state_file, aside)
        raise CorruptState(
            f"The state file {paths.state_file} was corrupt and has been moved to {aside}; "
            "run the command again (check `labshare logs` if a server was running)."
        ) from exc


def save(paths: Paths, state: ServerState) -> None:
    write_atomic(paths.state_file, json.dumps(dataclasses.asdict(state), indent=2) + "\n")


def clear(paths: Paths) -> None:
    with contextlib.suppress(FileNotFoundError):
        paths.state_file.unlink()


@contextlib.contextmanager
def locked(paths: Paths, timeout: float = 30.0) -> Iterator[None]:
    """Hold the per-host server lock; parallel `start`s queue here so only one server is made."""
    fd = os.open(paths.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LabshareError(
                        f"Another labshare command has held {paths.lock_file} for {timeout:.0f} s; "
                        "wait for it to finish and try again."
                    ) from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)


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
