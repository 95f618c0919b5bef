"""What logind and sshd are configured to do, read the way each daemon reads its own files.

logind takes the last value among logind.conf and its drop-ins (in
/usr/lib, /run and /etc, by file name); sshd takes the first, with its
`Include`s expanded in place and `Match` blocks ending the global part.
Reading them wrong turns a correct host into a false alarm, so both rules
live here, apart from the verdicts.  Where `sshd -T` can run (it needs the
host keys, so usually as root) sshd's own answer is used instead.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
from pathlib import Path

from labshare import proc
from labshare.errors import LabshareError
from labshare.paths import Paths

Entry = tuple[Path, str]
_MAX_INCLUDE_DEPTH = 8


def _read_lines(path: Path, unreadable: list[Path]) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []
    except OSError:
        unreadable.append(path)
        return []


def lookup(entries: list[Entry], key: str, first_wins: bool) -> tuple[str | None, Path | None]:
    """The value of `key` among config lines (sshd: first wins; systemd: last wins); Match blocks end the search."""
    value: tuple[str | None, Path | None] = (None, None)
    for path, line in entries:
        text = line.strip()
        if not text or text.startswith(("#", ";", "[")):
            continue
        if text.lower().startswith("match "):
            break
        m = re.match(r"^(\S+?)\s*(?:=|\s)\s*(.*)$", text)
        if m and m.group(1).lower() == key.lower():
            if first_wins and value[0] is not None:
                continue
            value = (m.group(2).strip(), path)
    return value


def _logind_files(main: Path) -> list[Path]:
    dirs = [main.parent / "logind.conf.d"]
    if main == Paths.logind_config:
        dirs = [Path("/usr/lib/systemd/logind.conf.d"), Path("/run/systemd/logind.conf.d"), *dirs]
    drop_ins = sorted(
        {p.name: p for d in dirs for p in sorted(d.glob("*.conf"))}.values(), key=lambda p: p.name
    )
    return [main, *drop_ins]


def logind_value(main: Path, key: str) -> tuple[str | None, Path | None, list[Path]]:
    """logind's setting `key`, the file that set it, and the files that could not be read."""
    unreadable: list[Path] = []
    entries = [
        (path, line) for path in _logind_files(main) for line in _read_lines(path, unreadable)
    ]
    value, where = lookup(entries, key, first_wins=False)
    return value, where, unreadable


def sshd_entries(main: Path, unreadable: list[Path]) -> list[Entry]:
    """sshd_config's lines with its Includes expanded in place (relative names are under /etc/ssh)."""

    def walk(path: Path, depth: int) -> list[Entry]:
        out: list[Entry] = []
        for line in _read_lines(path, unreadable):
            words = line.split()
            if depth < _MAX_INCLUDE_DEPTH and len(words) >= 2 and words[0].lower() == "include":
                for pattern in words[1:]:
                    if not os.path.isabs(pattern):
                        pattern = str(main.parent / pattern)
                    for found in sorted(glob.glob(pattern)):
                        out += walk(Path(found), depth + 1)
            else:
                out.append((path, line))
        return out

    return walk(main, 0)


def sshd_t(config: Path, user: str) -> dict[str, str] | None:
    """`sshd -T` (the effective settings for this user) where it can run, which needs the host keys."""
    sshd = shutil.which(
        "sshd", path="/usr/sbin:/usr/local/sbin:/sbin:" + os.environ.get("PATH", "")
    )
    if not sshd:
        return None
    try:
        done = proc.run(
            [sshd, "-T", "-f", config, "-C", f"user={user},host=localhost,addr=127.0.0.1"],
            what="sshd -T",
            timeout=10,
        )
    except (LabshareError, OSError):
        return None
    settings: dict[str, str] = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition(" ")
        settings.setdefault(key.lower(), value.strip().lower())
    return settings
