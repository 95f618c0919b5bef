"""One rollback for every multi-step change to a member's files.

`env create` and `env adopt` each run several programs (uv init, uv add, uv
sync) and write files between them; any step may fail, or be interrupted.
Before a step touches something, the command records here how to put it
back, and `undone_on_failure` replays those records newest first if anything
escapes, so a failed command leaves the folder as it found it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from labshare.files import write_atomic


def _delete(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _entries(folder: Path) -> set[str]:
    try:
        return set(os.listdir(folder))
    except FileNotFoundError:
        return set()


class Undo:
    """The ways back, recorded before each change."""

    def __init__(self) -> None:
        self._steps: list[Callable[[], None]] = []

    def made(self, path: Path) -> None:
        """`path` may be about to be created: remove it, and any parents made with it, on failure."""
        missing = next((p for p in [*reversed(path.parents), path] if not p.exists()), None)
        if missing is not None:
            self._steps.append(lambda: _delete(missing))

    def new_entries(self, folder: Path) -> None:
        """Things may be about to appear in `folder`: remove those that were not there before."""
        before = _entries(folder)

        def clear() -> None:
            for entry in _entries(folder) - before:
                _delete(folder / entry)

        self._steps.append(clear)

    def file(self, path: Path) -> None:
        """`path` may be about to change or appear: bring back its bytes and mode, or its absence."""
        if not path.is_file():
            self._steps.append(lambda: path.unlink(missing_ok=True))
            return
        before, mode = path.read_bytes(), path.stat().st_mode & 0o777

        def restore() -> None:
            if not path.is_file() or path.read_bytes() != before:
                write_atomic(path, before, mode=mode)

        self._steps.append(restore)

    def run(self) -> None:
        for step in reversed(self._steps):
            step()


@contextlib.contextmanager
def undone_on_failure() -> Iterator[Undo]:
    """Yield an Undo whose records are replayed if the block raises anything, Ctrl-C included."""
    undo = Undo()
    try:
        yield undo
    except BaseException:
        undo.run()
        raise
