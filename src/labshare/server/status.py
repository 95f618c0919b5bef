"""What `labshare status` and `labshare info` report, cheaply.

Reads the state file, checks pids in /proc and makes one HTTP request; it
imports nothing of Jupyter and nothing that only `start` needs, so status
stays well under the 0.15 s a prompt or a script can afford.
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import socket as socketlib
import time
from pathlib import Path

from labshare import __version__, probe
from labshare.errors import LabshareError
from labshare.files import remove
from labshare.gpus import history
from labshare.paths import Paths
from labshare.records.info import ServerInfo, ServerStatus
from labshare.records.server import HubServer
from labshare.server import state as st
from labshare.server.records import living
from labshare.server.token import read_token
from labshare.users import enable_linger


def whoami() -> tuple[str, str]:
    return getpass.getuser(), socketlib.gethostname()


def address(record: st.ServerState) -> probe.Address:
    return probe.Address(socket=record.socket, port=record.port)


def socket_in_use(path: Path) -> bool:
    with socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def forget(paths: Paths, record: st.ServerState) -> None:
    """Remove what a dead server left: its record, socket, token and Jupyter runtime files."""
    if record.socket and not socket_in_use(Path(record.socket)):
        remove(Path(record.socket))
    if record.pid:
        for leftover in paths.runtime_dir.glob(f"jpserver-{record.pid}*"):
            remove(leftover)
    remove(paths.token_file)
    st.clear(paths)


def observe(paths: Paths) -> tuple[st.ServerState | None, list[str]]:
    """The live record, after clearing one whose processes are all gone (and saying so)."""
    record = st.load(paths)
    if record is None:
        return None, []
    supervisor = st.alive(record.supervisor_pid, record.supervisor_started)
    jupyter = st.alive(record.pid, record.pid_started)
    if supervisor or jupyter:
        notes = []
        if not supervisor:
            notes.append(
                f"The supervisor (pid {record.supervisor_pid}) is gone, so a crash would not be "
                "restarted; run `labshare restart` to supervise the server again."
            )
        return record, notes
    if record.failed:
        note = (
            f"The last server gave up: {record.failed}; see `labshare logs`, "
            "fix the cause and run `labshare start`."
        )
    else:
        note = (
            f"The server started at {record.started_at} (supervisor pid {record.supervisor_pid}) "
            "is no longer running (killed, or the machine rebooted); its leftovers were cleaned up."
        )
    with contextlib.suppress(OSError):
        forget(paths, record)
    return None, [note]


def running_hub_server(paths: Paths) -> HubServer | None:
    """The member's JupyterHub-spawned server on this host, if one runs; the record of one gone is removed."""
    found = st.hub_store(paths).read()
    if found is None:
        return None
    if st.alive(found.pid, found.started):
        return found
    remove(paths.hub_server_file)
    return None


def under_hub(found: HubServer) -> str:
    return (
        f"Your server runs under JupyterHub (pid {found.pid} on {found.host}); open it through the "
        f"hub{f' at {found.url}' if found.url else ''}"
    )


def status_of(paths: Paths, record: st.ServerState | None, notes: list[str]) -> ServerStatus:
    said = list(notes)
    if record is None:
        hub = running_hub_server(paths)
        if hub is not None:
            said.append(under_hub(hub) + ".")
        return ServerStatus(
            log_file=str(paths.log_file),
            notes=tuple(said),
            hub_url=hub.url if hub else None,
        )
    pid = record.pid if st.alive(record.pid, record.pid_started) else None
    supervisor_alive = st.alive(record.supervisor_pid, record.supervisor_started)
    answer = None
    if pid is not None:
        with contextlib.suppress(LabshareError):
            answer = probe.status(address(record), read_token(paths), timeout=3.0)
    if answer is None and pid is not None:
        said.append("Jupyter is running but does not answer yet; it may still be starting.")
    elif answer is None and supervisor_alive:
        said.append("Jupyter is being restarted by the supervisor.")
    if pid is not None:
        for notice in history.warnings(paths.state_dir).values():
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(notice.at))
            said.append(
                f"Kernel {notice.kernel_id} has left GPU {', '.join(notice.cards)} unused while idle; "
                f"it will be shut down at {when} unless it runs something (see `labshare gpus`)."
            )
    caps = {k: v for k, v in record.limits.items() if k != "gpus"}
    if caps and not record.limits_enforced:
        shown = ", ".join(f"{k} = {v}" for k, v in caps.items())
        said.append(
            f"The site limits {shown} are not enforced here: this host has no systemd user manager "
            f"for `systemd-run --user` (ask an admin to run `{enable_linger(getpass.getuser())}`)."
        )
    if record.socket_fallback:
        said.append(
            f"The socket is in {Path(record.socket or '').parent} because the path under "
            f"{paths.state_dir} is longer than Unix sockets allow."
        )
    return ServerStatus(
        running=answer is not None,
        pid=pid,
        supervisor_pid=record.supervisor_pid if supervisor_alive else None,
        mode=record.mode,
        socket=record.socket,
        port=record.port,
        root_dir=record.root_dir,
        started_at=record.started_at,
        restarts=record.restarts,
        kernels=answer.get("kernels") if answer else None,
        connections=answer.get("connections") if answer else None,
        last_activity=answer.get("last_activity") if answer else None,
        socket_fallback=record.socket_fallback,
        limits=record.limits,
        limits_enforced=record.limits_enforced,
        keep_outputs=record.keep_outputs,
        surviving_kernels=tuple(
            {
                "id": r.kernel_id,
                "name": r.kernel_name,
                "pid": r.pid,
                "server_restarts_survived": r.survived,
            }
            for r in living(paths.kernel_records_dir)
        ),
        log_file=str(paths.log_file),
        notes=tuple(said),
    )


def status(paths: Paths) -> ServerStatus:
    record, notes = observe(paths)
    return status_of(paths, record, notes)


def info(paths: Paths) -> ServerInfo:
    """`status` plus what `connect` needs, as the record the laptop reads (records/info.py)."""
    now = status(paths)
    user, host = whoami()
    return ServerInfo(
        **{f.name: getattr(now, f.name) for f in dataclasses.fields(now)},
        token=read_token(paths) if now.running else None,
        user=user,
        host=host,
        labshare=__version__,
    )
