"""What this laptop remembers of a host's JupyterLab: where it listens, its token, our local port.

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

Plain paths and standard modules only: dial.py reads the memory before the
rest of labshare is imported (so its type, `records.KnownServer`, is a named tuple).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import zlib

from labshare.records import KnownServer, RecordError

TYPE_CHECKING = False  # as mypy reads it; importing `typing` would cost the early path 4 ms
if TYPE_CHECKING:
    from labshare.records.info import ServerInfo


def _ours(st: os.stat_result) -> bool:
    """Owned by us and writable by nobody else: a memory others could write could aim the token at them."""
    return not hasattr(os, "getuid") or (st.st_uid == os.getuid() and not st.st_mode & 0o022)


class Memory:
    """The memory for one destination with one set of `-o` options (they can lead to another server)."""

    def __init__(self, state_root: str, destination: str, options: tuple[str, ...] = ()):
        name = re.sub(r"[^A-Za-z0-9._@-]", "_", destination)[:64]
        digest = zlib.crc32("\0".join((destination, *options)).encode())
        self.file = os.path.join(state_root, "connect", f"known-{name}-{digest:08x}.json")

    def load(self) -> KnownServer | None:
        """The remembered server and laptop facts, or None when there is none worth trying.

        A memory this labshare cannot read (another version's, a broken one)
        is a cache miss: the server is asked again and the memory rewritten.
        """
        try:
            parent = os.lstat(os.path.dirname(self.file))
            if not stat.S_ISDIR(parent.st_mode) or not _ours(parent):
                return None
            with open(self.file, "rb") as handle:
                if not _ours(os.fstat(handle.fileno())):
                    return None
                known = KnownServer.from_json(
                    json.loads(handle.read()), f"the remembered server {self.file}"
                )
        except (OSError, ValueError, RecordError):
            return None
        if not known.rememberable:
            return None
        if known.local_port is not None and not 0 < known.local_port < 65536:
            return known._replace(local_port=None)
        return known

    def save(self, info: ServerInfo, local_port: int, own_master: bool) -> None:
        """Remember `info` if it is safe to, else forget the host; a disk problem only costs speed next time.

        Beside the server's facts: the local port (the next connect takes it
        again when free, so an old tab keeps working) and whether our own ssh
        master held the tunnel (only then may dial.py start one early).
        """
        known = KnownServer(
            mode=info.mode,
            socket=info.socket,
            socket_fallback=info.socket_fallback,
            token=info.token,
            user=info.user,
            host=info.host,
            root_dir=info.root_dir,
            local_port=local_port,
            own_master=own_master,
        )
        if not known.rememberable:
            self.forget()
            return
        from pathlib import Path

        from labshare.errors import LabshareError
        from labshare.files import ensure_private_dir, write_atomic

        with contextlib.suppress(OSError, LabshareError):
            ensure_private_dir(Path(self.file).parent)
            write_atomic(Path(self.file), json.dumps(known.to_json()))

    def forget(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.file)


class LastChoice:
    """Which server `connect GROUP` opened last, so the next one tries it first (connect HOST's speed).

    Only a hint: the next `connect GROUP` goes there only while the laptop
    remembers a running JupyterLab there and it answers through the tunnel;
    otherwise the group is asked again.  Its own type, `records.fleet.GroupChoice`.
    """

    def __init__(self, state_root: str, group: str, options: tuple[str, ...] = ()):
        name = re.sub(r"[^A-Za-z0-9._@-]", "_", group)[:64]
        digest = zlib.crc32("\0".join((group, *options)).encode())
        self.group = group
        self.file = os.path.join(state_root, "connect", f"group-{name}-{digest:08x}.json")

    def load(self) -> str | None:
        from labshare.records.fleet import GroupChoice

        try:
            with open(self.file, "rb") as handle:
                if not _ours(os.fstat(handle.fileno())):
                    return None
                choice = GroupChoice.from_json(json.loads(handle.read()), self.file)
        except (OSError, ValueError, RecordError):
            return None
        return choice.host if choice.group == self.group else None

    def save(self, host: str) -> None:
        from pathlib import Path

        from labshare.errors import LabshareError
        from labshare.files import ensure_private_dir, write_atomic
        from labshare.records.fleet import GroupChoice

        with contextlib.suppress(OSError, LabshareError):
            ensure_private_dir(Path(self.file).parent)
            write_atomic(
                Path(self.file), json.dumps(GroupChoice(group=self.group, host=host).to_json())
            )

    def forget(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.file)
