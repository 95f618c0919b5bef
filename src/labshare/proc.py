"""The one way labshare runs, starts and ends other programs.

Argument lists only, never a shell; quiet on success; on failure the error
carries the last lines the program printed, so the user sees why.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labshare.errors import LabshareError

if TYPE_CHECKING:  # POSIX only; `connect` runs this module on Windows laptops too
    import pwd


def tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    what: str,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout: float | None = None,
    input: str | None = None,
    hint: str = "",
    as_user: pwd.struct_passwd | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `argv` and return its captured output, or raise a LabshareError naming `what` failed.

    `as_user` (root only) runs it as that account with its own groups, as `admin stop` runs a
    member's `labshare stop`.
    """
    account: dict[str, Any] = {}
    if as_user is not None:
        account = {
            "user": as_user.pw_uid,
            "group": as_user.pw_gid,
            "extra_groups": os.getgrouplist(as_user.pw_name, as_user.pw_gid),
        }
    try:
        done = subprocess.run(
            [os.fspath(a) for a in argv],
            env=dict(env) if env is not None else None,
            cwd=cwd,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **account,
        )
    except FileNotFoundError as exc:
        raise LabshareError(
            f"{what} failed: {argv[0]} was not found.{(' ' + hint) if hint else ''}"
        ) from exc
    except OSError as exc:
        raise LabshareError(f"{what} could not run ({exc}).") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabshareError(f"{what} took longer than {timeout:.0f} s and was stopped.") from exc
    if done.returncode != 0:
        raise LabshareError(
            f"{what} failed (exit code {done.returncode}).{(' ' + hint) if hint else ''}",
            detail=tail(done.stderr or done.stdout),
        )
    return done


def start(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    stdin: int | None = subprocess.DEVNULL,
    stdout: int | None = subprocess.DEVNULL,
    stderr: int | None = subprocess.DEVNULL,
    new_session: bool = False,
    pass_fds: Sequence[int] = (),
    what: str | None = None,
) -> subprocess.Popen[str]:
    """Start a program that outlives this call (a tunnel, a supervisor), the same way every time.

    Text mode with undecodable bytes replaced, so a reader of its pipes never
    dies on a stray byte; a missing program is a LabshareError naming `what`.
    """
    try:
        return subprocess.Popen(
            [os.fspath(a) for a in argv],
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            text=True,
            errors="replace",
            start_new_session=new_session,
            pass_fds=tuple(pass_fds),
        )
    except FileNotFoundError as exc:
        raise LabshareError(
            f"{what or 'starting ' + os.fspath(argv[0])} failed: {argv[0]} was not found."
        ) from exc


def gone(proc: object) -> bool:
    """Whether a psutil.Process has exited; a zombie its parent has not reaped yet counts as gone."""
    import psutil

    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE  # type: ignore[attr-defined]
    except psutil.Error:
        return True


def wait_gone(procs: Sequence[object], timeout: float) -> list[object]:
    """Wait up to `timeout` for every process to end; returns those still alive."""
    import time

    deadline = time.monotonic() + timeout
    alive = [p for p in procs if not gone(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if not gone(p)]
    return alive


def end(procs: Sequence[object], grace: float) -> list[object]:
    """SIGTERM each psutil.Process, SIGKILL whatever outlives `grace`; returns what survived even that.

    Zombie-aware because the processes labshare ends are often not its own
    children (a member's server seen by `admin stop`), so nobody here reaps them.
    """
    import signal

    import psutil

    for proc in procs:
        try:
            proc.send_signal(signal.SIGTERM)  # type: ignore[attr-defined]
        except psutil.Error:
            continue
    alive = wait_gone(procs, grace)
    for proc in alive:
        try:
            proc.kill()  # type: ignore[attr-defined]
        except psutil.Error:
            continue
    return wait_gone(alive, 5)


def family(pid: int) -> set[int]:
    """`pid` and every process below it: what a kernel or command counts as its own use of a card."""
    import psutil

    try:
        return {pid} | {child.pid for child in psutil.Process(pid).children(recursive=True)}
    except psutil.Error:
        return {pid}


def leave_watcher(pid: int, body: Callable[[int | None], None]) -> None:
    """Run `body(pidfd of pid)` in a process of its own and return at once (an OSError if it cannot fork).

    For the kernel gate, which leaves watchers of the kernel it is about to
    `exec`: forked twice, so the kernel never has a child it did not start;
    in a session of its own, so a client that kills the kernel's process
    group spares it; holding no pipe of the kernel's client (which waits for
    their end) and no folder.  The pidfd is None where Linux has none (before 5.3).
    """
    try:
        pidfd: int | None = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    try:
        child = os.fork()
    except OSError:
        if pidfd is not None:
            os.close(pidfd)
        raise
    if child:
        os.waitpid(child, 0)
        if pidfd is not None:
            os.close(pidfd)
        return
    try:
        os.setsid()
        if os.fork() == 0:
            _detach(pidfd)
            body(pidfd)
    finally:
        os._exit(0)


def _detach(keep: int | None) -> None:
    """Close what is open by listing it: closing a whole range is one call per number on a Linux
    without close_range (before 5.9), and the soft limit may be a million."""
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd != keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the listing's own descriptor, closed already
