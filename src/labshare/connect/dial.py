"""`connect`'s ssh login, started before the rest of labshare is imported.

Importing the CLI (click, dataclasses, pathlib, the connect modules) takes
Python about 0.1 s, and for a host this laptop remembers (known.py) that was
nearly all the time `connect` took beyond a plain `ssh -N -L`.  So `labshare
connect HOST` starts its ssh master, with the remembered forward in it, in
its first milliseconds, and the imports run while ssh logs in.

Nothing is decided here that the session does not decide again: the CLI
still parses the command line, the session still asks `ssh -G` and builds its
own master command, and it adopts this ssh only when that command is the same
one (`take`); otherwise it ends it.  Only the plain form `connect [--json]
[--no-browser] [--start] HOST` is dialed early, and only when the last
connect to HOST held the tunnel in our own master, so a member whose ssh
config multiplexes already is never asked for a password twice.  An ssh not
taken is ended at exit.

From here until the command hands them to its session (`hand_over`),
Ctrl-C and SIGTERM are noted, not raised: an exception a signal handler
raises in the middle of an import may come out as a RuntimeError from class
creation (a traceback) or be swallowed by importlib (a Ctrl-C lost), and the
CLI is being imported all that time.  A noted signal ends the early ssh at
once and is given to the session, which then stops before it starts.

Standard modules only, and the light ones: the command lines the session
runs are built here too, so that both build the same.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import stat
import subprocess
from collections.abc import Callable
from types import FrameType

from labshare import localports, xdg
from labshare.connect import known

SSH = "ssh"
SERVER_ALIVE_INTERVAL = 5
SERVER_ALIVE_COUNT_MAX = 3
KEEPALIVE = (
    "-o",
    f"ServerAliveInterval={SERVER_ALIVE_INTERVAL}",
    "-o",
    f"ServerAliveCountMax={SERVER_ALIVE_COUNT_MAX}",
)
# macOS's sun_path is 104 bytes; ssh adds ".XXXXXXXXXXXXXXXX" while it binds the socket.
CONTROL_PATH_BUDGET = 104 - 1 - 17
EARLY_FLAGS = frozenset({"--json", "--no-browser", "--start"})


def forward_spec(
    local_port: int, remote_socket: str | None = None, remote_port: int | None = None
) -> str:
    """`-L` spec: 127.0.0.1:<local_port> here to the server's socket or its loopback port."""
    if remote_socket:
        return f"127.0.0.1:{local_port}:{remote_socket}"
    return f"127.0.0.1:{local_port}:127.0.0.1:{remote_port}"


def master_argv(
    ssh: str,
    option_args: list[str],
    destination: str,
    control_path: str,
    forward: str | None = None,
) -> list[str]:
    """Our `ssh -M -N`: authenticates once, holds the forward; `ControlPersist=no` ends it with us."""
    return [
        ssh,
        *option_args,
        "-M",
        "-N",
        *(["-L", forward] if forward else []),
        "-o",
        f'ControlPath="{control_path}"',
        "-o",
        "ControlPersist=no",
        "-o",
        "ExitOnForwardFailure=yes",
        *KEEPALIVE,
        "--",
        destination,
    ]


def control_dir(state_root: str, tmp_root: str, uid: int) -> str:
    """Where our control sockets go: the state dir, or a private /tmp dir when that is too long for sun_path."""
    preferred = os.path.join(state_root, "ssh")
    if len(os.fsencode(preferred)) + 16 <= CONTROL_PATH_BUDGET:
        return preferred
    return os.path.join(tmp_root, f"labshare-{uid}", "ssh")


def spawn(argv: list[str], control_path: str | None = None) -> subprocess.Popen[str]:
    """Start a long-lived ssh with its stderr kept for diagnosis (a stale control socket removed first).

    Popen itself rather than `labshare.proc.start`: this runs before the CLI
    is imported, and proc's own imports (pathlib) would add 3-4 ms before ssh
    even starts, about a tenth of all a later connect costs over plain ssh.
    """
    if control_path:
        try:
            os.unlink(control_path)
        except FileNotFoundError:
            pass
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )


def stop(proc: subprocess.Popen[str]) -> None:
    """End an ssh we started: SIGTERM (ssh then closes its forwards), SIGKILL if it lingers.

    Its own Popen, which also reaps it: `labshare.proc.end` is for processes
    labshare cannot wait for, and its psutil import would cost a heal 20 ms.
    """
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def bind_local(port: int | None) -> int | None:
    """`port` if 127.0.0.1 lets us listen on it now, else None; when None, a free one (`localports`)."""
    if port is None:
        picked = localports.pick(lambda p: _bind(p) is not None)
        if picked is not None:
            return picked
    return _bind(port)


def _bind(port: int | None) -> int | None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if os.name != "nt":
            # Only a listener counts as "taken"; closed connections in TIME_WAIT do not stop ssh.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port or 0))
        except OSError:
            return None
        return int(sock.getsockname()[1])


def pick_local_port(preferred: int | None) -> int | None:
    """`preferred` (last time's port) when it is free now, else any free one; None only if none is."""
    return (bind_local(preferred) if preferred else None) or bind_local(None)


class Dialed:
    """An ssh master started by `start`, waiting for the session to take it."""

    def __init__(self, argv: list[str], control_path: str, local_port: int):
        self.argv, self.control_path, self.local_port = argv, control_path, local_port
        self.proc = spawn(argv, control_path)

    def end(self) -> None:
        stop(self.proc)
        try:
            os.unlink(self.control_path)
        except OSError:
            pass


_dialed: Dialed | None = None


def start(args: list[str]) -> None:
    """Start the master for `connect <args>` now, when the last connect says it is the right one.

    Any doubt means no early ssh: the session then starts its own as usual.
    """
    global _dialed
    _hold_signals()
    atexit.register(_end_untaken)
    destinations = [a for a in args if not a.startswith("-")]
    if (
        os.name == "nt"
        or len(destinations) != 1
        or not set(args) - set(destinations) <= EARLY_FLAGS
    ):
        return
    state_root = os.path.join(xdg.state_home(os.environ), "labshare")
    info = known.Memory(state_root, destinations[0]).load()
    if info is None or info.own_master is not True:
        return
    directory = control_dir(state_root, "/tmp", os.getuid())
    checked = [directory]
    if not directory.startswith(state_root + os.sep):
        checked.append(os.path.dirname(directory))  # in the shared /tmp, our dir above it too
    if not all(_private(path) for path in checked):
        return
    try:
        port = pick_local_port(info.local_port)
        if port is None:
            return
        control_path = os.path.join(directory, f"c-{os.getpid()}")
        argv = master_argv(
            SSH, [], destinations[0], control_path, forward_spec(port, str(info.socket))
        )
        dialed = Dialed(argv, control_path, port)
    except OSError:
        return
    if _held:
        dialed.end()  # a signal came while ssh was being started
    else:
        _dialed = dialed


def _private(path: str) -> bool:
    """Our own 0700 directory, not a link: the only kind of place our control socket may go."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return (
        stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) == 0o700
    )


def pending() -> bool:
    """Whether an early ssh is logging in (and may be prompting on the terminal) right now."""
    return _dialed is not None


def take() -> Dialed | None:
    """The early ssh, handed over once; whoever takes it adopts or ends it."""
    global _dialed
    dialed, _dialed = _dialed, None
    return dialed


def _end_untaken() -> None:
    dialed = take()
    if dialed is not None:
        dialed.end()


Handler = Callable[[int, FrameType | None], object]
_DEFAULTS: dict[int, Handler | signal.Handlers] = {
    signal.SIGINT: signal.default_int_handler,
    signal.SIGTERM: signal.SIG_DFL,
}
_held: list[int] = []


def _hold_signals() -> None:
    for signum in _DEFAULTS:
        signal.signal(signum, _note)


def _note(signum: int, _frame: FrameType | None) -> None:
    _held.append(signum)
    _end_untaken()


def hand_over(handler: Handler | None = None) -> None:
    """From now on Ctrl-C and SIGTERM go to `handler` (Python's own handling when None), the noted ones first."""
    for signum, default in _DEFAULTS.items():
        signal.signal(signum, handler or default)
    noted, _held[:] = list(_held), []
    for signum in dict.fromkeys(noted):
        if handler is None:
            signal.raise_signal(signum)
        else:
            handler(signum, None)
