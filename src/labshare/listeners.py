"""Who listens on a TCP port of this host, read from /proc/net.

`port_retries=0` turns a taken port into an error; this module turns the
error into a name, because "port 10001 is taken by bob" is actionable and
"address in use" is not.  The owner's uid is in /proc/net/tcp for every
user; the pid is visible only for our own processes (or to root).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from labshare import localports
from labshare.users import user_name

_LISTEN = "0A"


@dataclass(frozen=True)
class Listener:
    port: int
    uid: int
    user: str
    pid: int | None
    command: str | None


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether Jupyter could bind `host:port` now (with SO_REUSEADDR, as tornado binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A free port for Jupyter to bind a second or two later: see `localports`."""
    picked = localports.pick(lambda port: port_is_free(port, host))
    if picked is not None:
        return picked
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _socket_inodes(port: int) -> dict[str, int]:
    inodes: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) < 10 or cols[3] != _LISTEN:
                continue
            if int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes[cols[9]] = int(cols[7])
    return inodes


def _pid_of(inode: str) -> int | None:
    target = f"socket:[{inode}]"
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            for fd in os.scandir(f"/proc/{entry.name}/fd"):
                if os.readlink(fd.path) == target:
                    return int(entry.name)
        except OSError:
            continue
    return None


def listener(port: int) -> Listener | None:
    """The process listening on `port`, as far as this user may see it."""
    for inode, uid in _socket_inodes(port).items():
        pid = _pid_of(inode)
        command = None
        if pid is not None:
            try:
                command = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                pass
        return Listener(port=port, uid=uid, user=user_name(uid), pid=pid, command=command)
    return None


def describe(found: Listener | None) -> str:
    if found is None:
        return "another process"
    who = "you" if found.uid == os.getuid() else f"user {found.user}"
    proc = f" (pid {found.pid}, {found.command})" if found.pid else ""
    return f"{who}{proc}"
