"""What idle reclaim did and is about to do, kept where only the member and root can read it.

The reclaimer runs inside the member's server; `labshare gpus` is another
process.  They meet in two files of the member's 0700 state directory:
the history (one JSON line per reclaimed kernel: who, which notebook, how
long idle, how much GPU memory came back, when) and the warnings now due
(kernel id -> when its card goes back).  Notebook paths are private, so
neither file ever goes in the world-readable leases directory.
"""

from __future__ import annotations

import json
import os
import pwd
import socket
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from labshare.files import write_atomic

HISTORY = "gpu-history.jsonl"
WARNINGS = "gpu-reclaim.json"


@dataclass(frozen=True)
class Reclaimed:
    """One reclaimed kernel, as its history line says."""

    user: str
    kernel_id: str
    notebook: str | None
    cards: list[str]  # UUIDs
    idle_seconds: int
    memory_bytes: int  # the GPU memory its processes held, which came back
    at: float  # seconds since the epoch


@dataclass(frozen=True)
class Notice:
    """A lease that goes back at `at` unless its kernel is used first."""

    kernel_id: str
    cards: list[str]
    at: float


def record(state_dir: Path, entry: Reclaimed) -> None:
    """Append one history line; the file is made 0600 so only the member (and root) read notebooks' names."""
    path = state_dir / HISTORY
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as out:
        out.write(json.dumps(asdict(entry), sort_keys=True) + "\n")


def read(paths: Iterable[Path]) -> list[Reclaimed]:
    """Every history line in these files, oldest first; unreadable files and broken lines are skipped."""
    found: list[Reclaimed] = []
    for path in paths:
        try:
            lines = path.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                found.append(Reclaimed(**json.loads(line)))
            except (ValueError, TypeError):
                continue
    return sorted(found, key=lambda entry: entry.at)


def everyones(own_state_dir: Path) -> list[Path]:
    """Root's view: one's own history and that of every account's default state directory on this host."""
    host = socket.gethostname()
    homes = {Path(entry.pw_dir) / ".local/state/labshare" / host for entry in pwd.getpwall()}
    return [own_state_dir / HISTORY] + sorted(d / HISTORY for d in homes if d != own_state_dir)


def save_warnings(state_dir: Path, warnings: Mapping[str, Notice]) -> None:
    write_atomic(state_dir / WARNINGS, json.dumps({k: asdict(w) for k, w in warnings.items()}, sort_keys=True))


def warnings(state_dir: Path) -> dict[str, Notice]:
    """The warnings the member's server has given and not yet carried out or withdrawn."""
    try:
        data = json.loads((state_dir / WARNINGS).read_text())
        return {kernel: Notice(**value) for kernel, value in data.items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}
