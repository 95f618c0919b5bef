"""Notices of long cells in kernels that other clients start: papermill, nbclient, `jupyter execute`, VS Code's own.

Those clients start labshare's kernels from the kernelspec, through the
GPU gate (`gpus.gate`), never through the Lab server, so the server's
extension never sees their cells.  The gate, just before it becomes the
kernel, leaves this watcher: a process of its own (forked twice, in its own
session, holding nothing of the kernel's) that subscribes to the kernel's
iopub with the connection file's key, groups cells into runs as the
server does (`notify.runs`), and ends with the kernel.  The notebook is the
client's first `.ipynb` argument where it has one (papermill's and
nbclient's input), else the client's name.  It is left only when the member
wants cell notices and has a channel, so it costs nothing otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import time
from collections.abc import Sequence
from pathlib import Path

from labshare.notify import events
from labshare.notify.runs import Runs, hear
from labshare.paths import Paths
from labshare.proc import leave_watcher

POLL_MS = 1000


def connection_file(command: Sequence[str]) -> Path | None:
    """The kernel command's `-f FILE` (or `--f=FILE`), as Jupyter clients write it."""
    for n, word in enumerate(command):
        if word == "-f" and n + 1 < len(command):
            return Path(command[n + 1])
        if word.startswith(("--f=", "-f=")):
            return Path(word.split("=", 1)[1])
    return None


def subject_of(client_pid: int, client: str | None) -> str:
    """The notebook a client runs, from its command line; else which client it is."""
    try:
        words = (
            Path(f"/proc/{client_pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        )
    except OSError:
        words = []
    notebooks = [w for w in words[1:] if w.endswith(".ipynb")]
    if notebooks:
        return notebooks[0]
    return f"a notebook run by {client or 'another client'}"


def leave(command: Sequence[str], client_pid: int, client: str | None) -> None:
    """Leave a watcher for the kernel this process is about to become; returns at once, never raises."""
    try:
        paths = Paths.from_env()
        member, site = events.settings(paths)
        if not events.wanted(events.Event("cell", "", seconds=float("inf")), member, site):
            return
        where = connection_file(command)
        if where is None:
            return
        subject = subject_of(client_pid, client)

        def watch(pidfd: int | None) -> None:
            try:
                if pidfd is None:
                    raise OSError("this Linux has no pidfd to tell when the kernel ends")
                follow(paths, where, pidfd, subject)
            except Exception as exc:  # said in the sender's log, beside the member's notices
                _said(
                    paths, f"watching the kernel of {subject} failed: {type(exc).__name__}: {exc}"
                )

        leave_watcher(os.getpid(), watch)
    except Exception:  # a notice is never worth a kernel that does not start
        return


def _said(paths: Paths, line: str) -> None:
    with contextlib.suppress(OSError):
        log = events.outbox(paths).ensure().root / "sender.log"
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"labshare notices: {line}\n".encode())
        finally:
            os.close(fd)


def follow(paths: Paths, where: Path, pidfd: int, subject: str, grace: float = 1.5) -> None:
    """Watch the kernel's iopub until the kernel ends, writing a notice for each run that ends."""
    import zmq
    from jupyter_client.session import Session

    info = json.loads(where.read_text())
    session = Session(
        key=str(info.get("key", "")).encode(),
        signature_scheme=info.get("signature_scheme", "hmac-sha256"),
    )
    context = zmq.Context()
    socket = context.socket(zmq.SUB)
    socket.setsockopt(zmq.SUBSCRIBE, b"")
    transport, ip = info.get("transport", "tcp"), info.get("ip", "127.0.0.1")
    address = (
        f"ipc://{ip}-{info['iopub_port']}"
        if transport == "ipc"
        else f"tcp://{ip}:{info['iopub_port']}"
    )
    socket.connect(address)
    poller = zmq.Poller()
    poller.register(socket, zmq.POLLIN)
    poller.register(pidfd, zmq.POLLIN)
    runs = Runs(grace)
    try:
        while True:
            due = runs.due()
            wait = POLL_MS if due is None else max(0, int((due - time.time()) * 1000))
            ready = dict(poller.poll(wait))
            if socket in ready and (heard := hear(session, socket.recv_multipart())):
                runs.heard(heard.kind, heard.request, heard.content, time.time())
            if (event := runs.finish(time.time(), subject)) is not None:
                events.emit(paths, event)
            if pidfd in ready or select.select([pidfd], [], [], 0)[0]:  # the kernel ended
                if runs.busy():
                    events.emit(
                        paths,
                        events.Event("kernel_died", "kernel died while running a cell", subject),
                    )
                elif (due := runs.due()) is not None and (last := runs.finish(due, subject)):
                    events.emit(paths, last)  # its client shut it down after the last cell
                return
    finally:
        socket.close(linger=0)
        context.term()
