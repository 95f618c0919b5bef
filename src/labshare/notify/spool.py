"""The spool: where members' processes leave notices for the lab's channels, and root takes them.

A root-owned sticky directory, mode 1733: anyone may create a file, nobody
may list it, and only a file's owner (or root) may remove or replace it,
so members cannot see or touch each other's notices.  Each file is 0600,
its owner's.  Root's service trusts the file's owner, as the filesystem
says, for whom a notice is for, and refuses a file whose content names
anyone else: a member cannot have the lab's channels speak to another.
Files are written under a dot-name and hard-linked into place, so root
never reads half a notice; the link fails if the name exists, so a notice
handed over twice is there once.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from labshare.files import read_dropped
from labshare.records import RecordError
from labshare.records.notice import Notice
from labshare.users import user_name

MAX_BYTES = 16 * 1024
MODE = 0o1733


def problem(spool: Path) -> str | None:
    """Why members could not safely leave notices in `spool`; None when it is as it must be."""
    try:
        st = os.lstat(spool)
    except FileNotFoundError:
        return (
            f"the notices spool {spool} does not exist; an admin creates it with "
            f"`sudo labshare admin notices install` (or `sudo install -d -m 1733 -o root {spool}`)"
        )
    mode = stat.S_IMODE(st.st_mode)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or mode not in (0o1733, 0o1777):
        return (
            f"the notices spool {spool} has mode {mode:o} and owner uid {st.st_uid}, but must be root's "
            f"with mode 1733 so members cannot read or remove each other's notices; fix it with "
            f"`sudo chown root {spool} && sudo chmod 1733 {spool}`"
        )
    return None


def drop(spool: Path, notice: Notice) -> str | None:
    """Leave `notice` in the spool for root's service; None when it is there (now or already)."""
    if (why := problem(spool)) is not None:
        return why
    name = f"{notice.id}.json"
    scratch = spool / f".{notice.id}.{os.getpid()}.tmp"
    try:
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(json.dumps(notice.to_json()))
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(scratch, spool / name)
    except OSError as exc:
        return f"cannot write to the notices spool {spool} ({exc.strerror or exc})"
    finally:
        with contextlib.suppress(OSError):
            os.unlink(scratch)
    return None


@dataclass(frozen=True)
class Taken:
    """One spool file as root reads it: its owner by the filesystem, its notice, or why it was refused."""

    name: str
    uid: int
    user: str
    notice: Notice | None
    refused: str | None = None


def take(spool: Path) -> list[Taken]:
    """Every notice in the spool, each removed once read; forged or broken ones are refused, never sent."""
    taken = []
    try:
        entries = [e for e in os.scandir(spool) if not e.name.startswith(".")]
    except OSError:
        return []
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        owner = user_name(st.st_uid)
        notice, refused = _read(entry.path, st)
        if notice is not None and notice.user != owner:
            refused = f"it names {notice.user!r} but belongs to {owner}"
            notice = None
        with contextlib.suppress(OSError):
            os.unlink(entry.path)
        taken.append(Taken(entry.name, st.st_uid, owner, notice, refused))
    return taken


def _read(path: str, st: os.stat_result) -> tuple[Notice | None, str | None]:
    raw, problem = read_dropped(path, st, MAX_BYTES)
    if raw is None:
        return None, problem
    try:
        return Notice.from_json(json.loads(raw), f"the spool file {path}"), None
    except (ValueError, RecordError) as exc:
        return None, f"unreadable ({exc})"
