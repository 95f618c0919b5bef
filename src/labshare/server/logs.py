"""Reading the server log: the last lines, following it across rotations, and what each line says.

The log holds two kinds of line: Jupyter's own (`[I 2026-12-07 12:00:00.123
ServerApp] message`, tornado's format: level letter, local time, logger) and
the supervisor's notes (`[labshare 2026-12-07 12:00:00] message`); anything
else (a traceback, a tool's output) is a line of its own with no header.
`entry` reads one line into those parts for `logs --json`, so scripts need
not know either format.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from labshare.errors import LabshareError

LEVELS = {"D": "debug", "I": "info", "W": "warning", "E": "error", "C": "critical"}
_STAMP = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?)"
_JUPYTER = re.compile(rf"\[([DIWEC]) {_STAMP} ([^\]]+)\] ?(.*)")
_SUPERVISOR = re.compile(rf"\[(labshare) {_STAMP}\] ?(.*)")


@dataclass(frozen=True)
class LogEntry:
    """One line of the log, in parts; a part the line does not hold is None."""

    time: str | None  # ISO 8601 with this host's UTC offset (the log is written in local time)
    level: str | None  # "debug", "info", "warning", "error" or "critical" (Jupyter's lines only)
    # Jupyter's logger ("ServerApp", "LabApp", ...) or "labshare" (the supervisor)
    source: str | None
    message: str
    line: str  # the line as written


def _local_iso(stamp: str) -> str | None:
    try:
        return dt.datetime.fromisoformat(stamp).astimezone().isoformat()
    except ValueError:
        return None


def entry(line: str) -> LogEntry:
    """What one log line says: its time, level, source and message where it has them."""
    if found := _JUPYTER.fullmatch(line):
        letter, stamp, source, message = found.groups()
        return LogEntry(_local_iso(stamp), LEVELS[letter], source, message, line)
    if found := _SUPERVISOR.fullmatch(line):
        source, stamp, message = found.groups()
        return LogEntry(_local_iso(stamp), None, source, message, line)
    return LogEntry(None, None, None, line, line)


def last_lines(path: Path, n: int) -> list[str]:
    try:
        with open(path, errors="replace") as handle:
            return [line.rstrip("\n") for line in deque(handle, maxlen=n)]
    except FileNotFoundError:
        raise LabshareError(
            f"There is no server log yet ({path}); run `labshare start` first."
        ) from None


def follow(path: Path, poll: float = 0.25) -> Iterator[str]:
    """Yield lines as they are appended; reopen when the file is rotated or truncated."""
    handle = open(path, errors="replace")
    handle.seek(0, os.SEEK_END)
    inode = os.fstat(handle.fileno()).st_ino
    try:
        while True:
            line = handle.readline()
            if line:
                yield line.rstrip("\n")
                continue
            time.sleep(poll)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            if st.st_ino != inode or st.st_size < handle.tell():
                handle.close()
                handle = open(path, errors="replace")
                inode = os.fstat(handle.fileno()).st_ino
    finally:
        handle.close()
