"""What idle reclaim did and is about to do, kept where only the member and root can read it.

The reclaimer runs inside the member's server; `labshare gpus` is another
process.  They meet in two files of the member's 0700 state directory:
the history (one JSON line per reclaimed kernel: who, which notebook, how
long idle, how much GPU memory came back, when) and the warnings now due
(kernel id -> when its card goes back).  Notebook paths are private, so
neither file ever goes in the world-readable leases directory.  Their
formats are `records.gpu_leases.Reclaimed` (a line each) and `ReclaimWarnings`.
"""

from __future__ import annotations

import json
import os
import pwd
import socket
from collections.abc import Iterable, Mapping
from pathlib import Path

from labshare.records import RecordError
from labshare.records.gpu_leases import Notice, Reclaimed, ReclaimWarnings
from labshare.records.store import Store

HISTORY = "gpu-history.jsonl"
WARNINGS = "gpu-reclaim.json"


def record(state_dir: Path, entry: Reclaimed) -> None:
    """Append one history line; the file is made 0600 so only the member (and root) read notebooks' names."""
    path = state_dir / HISTORY
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as out:
        out.write(json.dumps(entry.to_json(), sort_keys=True) + "\n")


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
                found.append(Reclaimed.from_json(json.loads(line), f"a line of {path}"))
            except (ValueError, RecordError):
                continue
    return sorted(found, key=lambda entry: entry.at)


def everyones(own_state_dir: Path) -> list[Path]:
    """Root's view: one's own history and that of every account's default state directory on this host."""
    host = socket.gethostname()
    homes = {Path(entry.pw_dir) / ".local/state/labshare" / host for entry in pwd.getpwall()}
    return [own_state_dir / HISTORY] + sorted(d / HISTORY for d in homes if d != own_state_dir)


def _warnings_store(state_dir: Path) -> Store[ReclaimWarnings]:
    return Store(state_dir / WARNINGS, ReclaimWarnings, "the GPU reclaim warnings")


def save_warnings(state_dir: Path, warnings: Mapping[str, Notice]) -> None:
    _warnings_store(state_dir).write(ReclaimWarnings(due=tuple(warnings.values())))


def warnings(state_dir: Path) -> dict[str, Notice]:
    """The warnings the member's server has given and not yet carried out or withdrawn (none if unreadable)."""
    try:
        saved = _warnings_store(state_dir).read()
    except (OSError, RecordError):
        return {}
    return {notice.kernel_id: notice for notice in saved.due} if saved else {}
