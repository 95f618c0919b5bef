"""Claims: named files in a root-owned sticky (1777) directory, labshare's lock without a daemon.

Port claims and GPU leases are both "whoever creates this name first has it".
Creating a name that must not exist yet is atomic on a local disk, so two
members can never both get it however many try at once; the sticky bit means
only a file's owner (or root) can remove or replace it, so nobody can delete
or take over another's claim; and the filesystem, not the file's content, says
who owns it, so a claim cannot lie about its owner.

The content is written under a private scratch name first and hard-linked
into place, so a reader sees a claim whole or not at all: a half-written
lease must never look corrupt and be taken over.  Entries are read without
following links and only when they are small regular files, so a hostile
entry (a symlink, a FIFO, a huge file) cannot mislead or stall a reader.
"""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from labshare.errors import LabshareError
from labshare.files import read_dropped
from labshare.users import user_name

MAX_BYTES = 4096
"""Claims are a few hundred bytes; anything larger is not one of ours and is not read."""


@dataclass(frozen=True)
class Entry:
    """One name in a claims directory, its owner as the filesystem says, and what it holds."""

    name: str
    uid: int
    user: str
    text: str | None  # None when it could not be read; `problem` says why
    problem: str | None = None


@dataclass(frozen=True)
class ClaimsDir:
    """A claims directory, named for the sentences that tell an admin how to fix it."""

    path: Path
    what: str = "claims directory"  # e.g. "port claims directory", "GPU leases directory"
    item: str = "claim"  # what one entry is called: "claim", "lease"

    def checked(self) -> ClaimsDir:
        """This directory, if it is one that protects each member's claims; else a LabshareError.

        Root-owned and sticky, or anyone could remove anyone's claim; writable
        by the caller, or creating a claim would fail later with no advice.
        """
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            raise LabshareError(
                f"The {self.what} {self.path} does not exist; an admin must create it once with "
                f"`sudo install -d -m 1777 {self.path}`."
            ) from None
        protected = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX and st.st_uid == 0
        if not protected or not os.access(self.path, os.W_OK | os.X_OK):
            raise LabshareError(
                f"The {self.what} {self.path} must be owned by root with mode 1777 (sticky) so nobody can "
                f"remove another's {self.item}; fix it with `sudo install -d -m 1777 -o root {self.path}`."
            )
        return self

    def create(self, name: str, text: str) -> bool:
        """Make `name` hold `text`, atomically and only if no such name exists; False if it does."""
        scratch = self._scratch(name, text)
        try:
            os.link(scratch, self.path / _plain(name))
            return True
        except FileExistsError:
            return False
        finally:
            _unlink(scratch)

    def replace(self, name: str, text: str) -> bool:
        """Give one's own `name` new content in one step; False if it is gone or not one's own.

        Used to hand a claim to another process (a lease taken by the server,
        then held by the kernel it started) without a moment of it missing.
        """
        try:
            owner = os.lstat(self.path / _plain(name)).st_uid
        except FileNotFoundError:
            return False
        if owner != os.geteuid():
            return False
        scratch = self._scratch(name, text)
        try:
            os.rename(scratch, self.path / name)
            return True
        except PermissionError:
            return False
        finally:
            _unlink(scratch)

    def remove(self, name: str) -> bool:
        """Remove `name`; False if it was already gone or is not ours to remove (the sticky bit)."""
        try:
            os.unlink(self.path / _plain(name))
            return True
        except (FileNotFoundError, PermissionError):
            return False

    def entries(self) -> list[Entry]:
        """Every claim in the directory, sorted by name; none if the directory cannot be read."""
        try:
            found = [e for e in os.scandir(self.path) if not e.name.startswith(".")]
        except OSError:
            return []
        entries = []
        for entry in found:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            text, problem = _read(entry.path, st)
            entries.append(
                Entry(
                    name=entry.name,
                    uid=st.st_uid,
                    user=user_name(st.st_uid),
                    text=text,
                    problem=problem,
                )
            )
        return sorted(entries, key=lambda e: e.name)

    def _scratch(self, name: str, text: str) -> Path:
        """`text` in a new file of our own, under a name no reader takes for a claim."""
        scratch = self.path / f".{_plain(name)}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                os.fchmod(
                    handle.fileno(), 0o644
                )  # readable by all whatever the umask (servers run under 077)
                handle.write(text)
        except BaseException:
            _unlink(scratch)
            raise
        return scratch


def _plain(name: str) -> str:
    """`name` if it is a plain entry name; a caller passing a path is a bug, not a user error."""
    if not name or "/" in name or name.startswith(".") or "\0" in name:
        raise ValueError(f"not a plain claim name: {name!r}")
    return name


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _read(path: str, st: os.stat_result) -> tuple[str | None, str | None]:
    data, problem = read_dropped(path, st, MAX_BYTES)
    return (None, problem) if data is None else (data.decode("utf-8", errors="replace"), None)
