"""The admin's stop: end another member's servers and kernels as cleanly as they would.

A labshare server is stopped by running that member's own `labshare stop`
as them (their uid, groups, HOME and XDG folders, read from the
supervisor's /proc environ, which only the owner and root can read), so
their kernels shut down through Jupyter and their state is cleaned by the
code that wrote it.  A Jupyter labshare did not start gets SIGTERM (Jupyter
then shuts its kernels down) and, after a grace period, SIGKILL.  Whatever
is still alive at the end is killed and reported, never left silently.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import sys
from dataclasses import dataclass, field
from typing import Any

import psutil

from labshare import proc
from labshare.errors import LabshareError
from labshare.gpus.nvml import GpuReader, read_nvml
from labshare.monitor.processes import Scanner, Server
from labshare.proc import end, wait_gone

GRACE_SECONDS = 10.0
STOP_TIMEOUT = 90.0
# What a member's `labshare stop` needs to find their state, taken from their own server's environment.
_KEPT_ENV = (
    "HOME",
    "USER",
    "LOGNAME",
    "PATH",
    "LANG",
    "LC_ALL",
    "XDG_STATE_HOME",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_RUNTIME_DIR",
    "LABSHARE_SITE_CONFIG",
    "TMPDIR",
)


@dataclass
class AdminStopResult:
    """What ran, what was done about it, and anything that is still alive (pids)."""

    user: str
    found: list[Server]
    stopped: bool = False
    left: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def account(user: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(user)
    except KeyError:
        raise LabshareError(
            f"There is no user named {user!r} on this host; see who runs what with `labshare ps --all-users`."
        ) from None


def running(user: str, gpu: GpuReader = read_nvml) -> AdminStopResult:
    """What `user` runs now, with notebook paths (the caller is root)."""
    pw = account(user)
    snap = Scanner(all_users=True, gpu=gpu).scan()
    return AdminStopResult(user=user, found=[s for s in snap.servers if s.uid == pw.pw_uid])


def _handles(server: Server) -> list[psutil.Process]:
    """The server's processes and everything below them, taken now so a reused pid is never hit later."""
    pids = [p for p in (server.supervisor_pid, server.pid, *(k.pid for k in server.kernels)) if p]
    found: dict[int, psutil.Process] = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            found[pid] = proc
            for child in proc.children(recursive=True):
                found[child.pid] = child
    return list(found.values())


def _member_env(server: Server, pw: pwd.struct_passwd) -> tuple[dict[str, str], str]:
    """The member's environment and their labshare's Python, from their supervisor (or server, or kernel)."""
    environ: dict[str, str] = {}
    python = sys.executable
    for pid in (server.supervisor_pid, server.pid, *(k.pid for k in server.kernels)):
        if not pid:
            continue
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            environ = proc.environ()
            argv = proc.cmdline()
            if pid == server.supervisor_pid and argv and os.path.isabs(argv[0]):
                python = argv[0]
            break
    env = {k: environ[k] for k in _KEPT_ENV if k in environ}
    env.setdefault("HOME", pw.pw_dir)
    env.setdefault("USER", pw.pw_name)
    env.setdefault("LOGNAME", pw.pw_name)
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.setdefault("LANG", "C.UTF-8")
    return env, python


def _stop_as_member(server: Server, pw: pwd.struct_passwd) -> str | None:
    """Run the member's `labshare stop` as them; None when it worked, else why not."""
    env, python = _member_env(server, pw)
    home = env["HOME"]
    try:
        proc.run(
            [python, "-m", "labshare", "stop", "--json"],
            what=f"`labshare stop` as {pw.pw_name}",
            as_user=pw,
            env=env,
            cwd=home if os.path.isdir(home) else "/",
            timeout=STOP_TIMEOUT,
        )
    except LabshareError as exc:
        return exc.message.rstrip(".") + (f": {exc.last_said}" if exc.last_said else "")
    return None


def stop(result: AdminStopResult, grace: float = GRACE_SECONDS) -> AdminStopResult:
    """Stop everything in `result.found`; fill in notes and whatever is left alive."""
    pw = account(result.user)
    left: list[Any] = []
    for server in result.found:
        procs = _handles(server)
        label = f"pid {server.pid or server.supervisor_pid or 'of its kernels'}"
        if server.managed:
            why = _stop_as_member(server, pw)
            if why:
                result.notes.append(f"{why}; its processes were signalled instead.")
        else:
            if server.pid:
                with contextlib.suppress(psutil.Error):
                    psutil.Process(server.pid).send_signal(signal.SIGTERM)
            result.notes.append(
                f"The Jupyter ({label}) was not started by labshare; it was sent SIGTERM."
            )
        alive = wait_gone(procs, grace if not server.managed else 5)
        if alive:
            if server.managed:
                result.notes.append(
                    f"{len(alive)} process(es) of the server ({label}) outlived the clean stop and were killed."
                )
            left += end(alive, grace=2.0)
    result.stopped = True
    result.left = sorted(p.pid for p in left)
    return result
