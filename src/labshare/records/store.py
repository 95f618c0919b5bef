"""One file holding one record: written atomically, locked for writers, moved aside when corrupt.

Readers never lock, since the write is a rename; writers that read, change
and write (the CLI and the supervisor on the server's state) hold the lock.
A file that does not parse is kept beside the original name, never deleted,
so whatever went wrong can still be looked at, and it is said in one line.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from labshare.errors import LabshareError
from labshare.files import write_atomic
from labshare.records import RecordError, TooNew
from labshare.records.base import Record

R = TypeVar("R", bound=Record)


class Corrupt(RecordError):
    """The file did not parse and was moved aside; running the command again starts afresh."""


@dataclass(frozen=True)
class Store(Generic[R]):
    """The file `path`, holding one `kind` record; `what` names it in sentences ("the state file")."""

    path: Path
    kind: type[R]
    what: str
    mode: int = 0o600

    @property
    def source(self) -> str:
        return f"{self.what} {self.path}"

    def read(self) -> R | None:
        """The record, or None when there is none; a newer format is a `RecordError`, a corrupt file `Corrupt`."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except PermissionError as exc:
            raise LabshareError(
                f"Cannot read {self.path} (permission denied); it must belong to you."
            ) from exc
        try:
            data = json.loads(raw)
        except ValueError:
            raise self.set_aside() from None
        try:
            return self.kind.from_json(data, self.source)
        except TooNew:
            raise  # a newer labshare's file: left in place for it
        except RecordError as exc:
            raise self.set_aside() from exc

    def set_aside(self) -> Corrupt:
        """Keep the unreadable file under a dated name and say so; the caller raises what this returns."""
        stamp = f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        aside = self.path.with_name(stamp)
        n = 1
        while aside.exists():  # one kept copy never replaces another
            aside, n = self.path.with_name(f"{stamp}.{n}"), n + 1
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:  # another reader moved it aside first
            return Corrupt(
                f"{self.path.name} was unreadable and has been set aside: run the command again."
            )
        return Corrupt(
            f"{self.path.name} was unreadable; kept as {aside}: run the command again to start afresh."
        )

    def write(self, record: R) -> None:
        write_atomic(self.path, json.dumps(record.to_json(), indent=2) + "\n", mode=self.mode)

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


@contextlib.contextmanager
def locked(lock_file: Path, timeout: float = 30.0) -> Iterator[None]:
    """Hold `lock_file` exclusively; parallel writers queue here, for `timeout` seconds at most."""
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LabshareError(
                        f"Another labshare command has held {lock_file} for {timeout:.0f} s; "
                        "wait for it to finish and try again."
                    ) from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)
