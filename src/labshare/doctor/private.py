"""The member's private folders: the token and the socket are safe only while nobody else can enter.

labshare's whole security rests on a 0700 state folder owned by the
member (the socket inside it is reachable only through it), so doctor
names every place that is a symlink, someone else's, or open to others,
and the one command that closes it.  A socket path too long to bind moves
to /tmp; that is said here too, because it changes where the socket is.
"""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path

from labshare.doctor import FAIL, OK, WARN, Check
from labshare.paths import Paths, socket_path_fits


def _private_problem(path: Path, uid: int) -> str | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return f"{path} is a symlink"
    if st.st_uid != uid:
        return f"{path} belongs to uid {st.st_uid}, not you"
    if stat.S_IMODE(st.st_mode) & 0o077:
        return f"{path} is mode {stat.S_IMODE(st.st_mode):04o}, readable by others"
    return None


def private_dirs(paths: Paths) -> Check:
    """The state, runtime and socket directories must be 0700 and ours: they hold the token and the socket."""
    places = [
        paths.state_root,
        paths.state_dir,
        paths.runtime_dir,
        paths.kernel_records_dir,
        paths.preferred_socket.parent,
        paths.fallback_socket.parent,
        paths.token_file,
    ]
    found = [(place, _private_problem(place, paths.uid)) for place in places]
    bad = [place for place, problem in found if problem]
    if bad:
        return Check(
            "private-dirs",
            FAIL,
            "; ".join(problem for _, problem in found if problem),
            "chmod go-rwx "
            + " ".join(shlex.quote(str(b)) for b in bad)
            + " (or remove what is not yours, then `labshare start`)",
        )
    if not paths.state_dir.exists():
        return Check(
            "private-dirs",
            OK,
            f"{paths.state_dir} does not exist yet; `labshare start` makes it 0700",
        )
    return Check("private-dirs", OK, f"{paths.state_dir} and what is under it are private to you")


def socket_path(paths: Paths) -> Check:
    """A Unix socket path over 107 bytes cannot be bound; labshare then moves it to /tmp."""
    size = len(os.fsencode(paths.preferred_socket))
    if socket_path_fits(paths.preferred_socket):
        return Check(
            "socket-path", OK, f"{paths.preferred_socket} ({size} bytes, the limit is 107)"
        )
    fix = "export XDG_STATE_HOME=~/.local/state (or another short path) in your shell profile"
    if socket_path_fits(paths.fallback_socket):
        return Check(
            "socket-path",
            WARN,
            f"{paths.preferred_socket} is {size} bytes, over the 107 a socket path may have; "
            f"labshare uses {paths.fallback_socket} instead",
            fix,
        )
    return Check(
        "socket-path",
        FAIL,
        f"neither {paths.preferred_socket} nor {paths.fallback_socket} fits in 107 bytes",
        fix,
    )
