"""Private directories, atomic files and guarded reads: the disk habits every part relies on.

A reader must never see half a file, and nothing holding a token, a pid or a
socket may be reachable by another account, so both are done in one place;
nor may a file another account drops into a shared folder (a lease, a
notice) make a reader follow a link, block on a FIFO or read without end.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from labshare.errors import LabshareError


def ensure_private_dir(path: Path) -> Path:
    """Create `path` (and parents) so that the leaf is a 0700 directory owned by us.

    An existing directory of ours with looser bits is tightened; one owned by
    someone else, or a symlink, is refused, since it could be a trap.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            pass
        st = os.lstat(path)
    except OSError as exc:
        raise LabshareError(
            f"Cannot create the directory {path} ({exc.strerror}); "
            "make its parent writable by you or point XDG_STATE_HOME at a directory you own."
        ) from exc
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise LabshareError(f"{path} is not a plain directory; move it away and try again.")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise LabshareError(
            f"{path} belongs to another user (uid {st.st_uid}); "
            "remove it or ask an admin to, since labshare only keeps secrets in directories you own."
        )
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def write_atomic(path: Path, data: str | bytes, mode: int = 0o600) -> None:
    """Write `data` to `path` via a temp file and rename, so readers see the old or the new file."""
    raw = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        if hasattr(os, "fchmod"):  # not on Windows
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def remove(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False


def read_dropped(path: str, st: os.stat_result, limit: int) -> tuple[bytes | None, str | None]:
    """The bytes of a small regular file in a folder others write to, as `st` (its lstat) found it.

    Opened without following a link or blocking, and only when what was
    opened is the very file `st` describes (inode, device, owner), so the
    owner a caller checked is the owner of what it reads; else None and why.
    """
    if not stat.S_ISREG(st.st_mode):
        return None, "not a regular file"
    if st.st_size > limit:
        return None, f"larger than {limit} bytes"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror})"
    with os.fdopen(fd, "rb") as handle:
        opened = os.fstat(handle.fileno())
        if (opened.st_ino, opened.st_dev, opened.st_uid) != (st.st_ino, st.st_dev, st.st_uid):
            return None, "replaced between its owner was read and it was opened"
        data = handle.read(limit + 1)
    if len(data) > limit:
        return None, f"larger than {limit} bytes"
    return data, None
