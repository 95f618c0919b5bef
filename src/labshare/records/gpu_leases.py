"""GPU leases and what idle reclaim did: the files of `gpus/leases.py` and `gpus/history.py`.

A lease is read by every member's labshare on the host (the leases
directory is shared and world-readable), possibly of another labshare
version than the one that wrote it, so its format is versioned like the
rest.  The reclaim history and the warnings due live in the member's own
state directory: notebook paths are private.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from labshare.records import UNVERSIONED
from labshare.records.base import Record


@dataclass(frozen=True)
class LeaseRecord(Record):
    """What a lease file says: the card, who holds it (pid and its start, on which boot) and since when.

    Never a notebook path: anyone can read the directory.  The filesystem,
    not this content, says whose it is; `gpus/leases.py` checks they agree.
    """

    VERSION: ClassVar[int] = 2

    card: str  # UUID
    mode: str  # "exclusive" or "shared"
    user: str
    uid: int
    pid: int
    pid_start: float
    boot_time: float
    boot_id: str
    since: float
    kernel_id: str | None = None
    label: str | None = None  # a `labshare run` command's label
    client: str | None = None  # the program that started a kernel outside Lab


@dataclass(frozen=True)
class Reclaimed(Record):
    """One reclaimed kernel, as its history line says."""

    VERSION: ClassVar[int] = 2

    user: str
    kernel_id: str
    notebook: str | None
    cards: tuple[str, ...]  # UUIDs
    idle_seconds: int
    memory_bytes: int  # the GPU memory its processes held, which came back
    at: float  # seconds since the epoch


@dataclass(frozen=True)
class Notice(Record):
    """A lease that goes back at `at` unless its kernel is used first."""

    VERSION: ClassVar[int] = 2

    kernel_id: str
    cards: tuple[str, ...]
    at: float


@dataclass(frozen=True)
class ReclaimWarnings(Record):
    """The warnings the member's server has given and not yet carried out or withdrawn, by kernel."""

    VERSION: ClassVar[int] = 2

    due: tuple[Notice, ...] = ()

    @classmethod
    def upgrade(cls, data: dict[str, Any], version: int) -> dict[str, Any]:
        """Format 1 was a bare `{kernel id: notice}` object; each notice a record of its own."""
        notices = data.get("due", []) if version > UNVERSIONED else list(data.values())
        if not isinstance(notices, list):
            return {"due": notices}
        return {"due": [Notice.from_json(n, "a GPU reclaim warning") for n in notices]}
