"""What this laptop remembers of a host's JupyterLab: where it listens and its token.

With it, the next `connect` opens the tunnel straight away instead of first
asking the server over ssh, which is most of the time `connect` takes over a
plain `ssh -N -L`.  A remembered server is only trusted once it answers
`/api/status` with 200 for that token through the tunnel; anything else and
it is forgotten and the server asked again.

Only a socket in the member's own state directory on the server is
remembered: no other account can listen there, so the token is never sent to
someone else's process.  A TCP port, or the shared-/tmp fallback socket,
could have been taken over since, so those are asked for every time.  The
file is 0600 in a 0700 directory, like an ssh key.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import zlib
from pathlib import Path
from typing import Any

from labshare.connect.ssh import Target
from labshare.errors import LabshareError
from labshare.files import ensure_private_dir, remove, write_atomic
from labshare.paths import Paths

KEPT = ("mode", "socket", "socket_fallback", "token", "user", "host", "root_dir")


def _file(paths: Paths, target: Target) -> Path:
    """One file per destination and `-o` options, since those can lead to a different server."""
    name = re.sub(r"[^A-Za-z0-9._@-]", "_", target.destination)[:64]
    digest = zlib.crc32("\0".join((target.destination, *target.options)).encode())
    return paths.state_root / "connect" / f"known-{name}-{digest:08x}.json"


def rememberable(info: dict[str, Any]) -> bool:
    return (info.get("mode") == "socket" and not info.get("socket_fallback")
            and bool(info.get("socket")) and bool(info.get("token")))


def load(paths: Paths, target: Target) -> dict[str, Any] | None:
    """The remembered server info, or None when there is none worth trying.

    A memory another account could have written (a directory or file not
    ours, or writable by others) is ignored: it could point the token at a
    socket of theirs.
    """
    path = _file(paths, target)
    try:
        ensure_private_dir(path.parent)
        with open(path, "rb") as handle:
            st = os.fstat(handle.fileno())
            if hasattr(os, "getuid") and (st.st_uid != os.getuid() or st.st_mode & 0o022):
                return None
            data = json.loads(handle.read())
    except (OSError, ValueError, LabshareError):
        return None
    if not isinstance(data, dict) or not rememberable(data):
        return None
    return {**data, "running": True}


def save(paths: Paths, target: Target, info: dict[str, Any]) -> None:
    """Remember `info` if it is safe to, else forget the host; a disk problem only costs speed next time."""
    if not rememberable(info):
        forget(paths, target)
        return
    path = _file(paths, target)
    with contextlib.suppress(OSError, LabshareError):
        ensure_private_dir(path.parent)
        write_atomic(path, json.dumps({key: info.get(key) for key in KEPT}))


def forget(paths: Paths, target: Target) -> None:
    with contextlib.suppress(OSError):
        remove(_file(paths, target))
