"""Reading the server log: the last lines, and following it across rotations."""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from labshare.errors import LabshareError


def last_lines(path: Path, n: int) -> list[str]:
    try:
        with open(path, errors="replace") as handle:
            return [line.rstrip("\n") for line in deque(handle, maxlen=n)]
    except FileNotFoundError:
        raise LabshareError(f"There is no server log yet ({path}); run `labshare start` first.") from None


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
