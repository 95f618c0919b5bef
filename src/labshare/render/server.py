"""Text faces of the server commands."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

from labshare.render import ago

if TYPE_CHECKING:
    from labshare.records.info import ServerInfo, ServerStatus
    from labshare.server.lifecycle import StartResult, StopResult


def _when(value: str | None) -> str:
    if not value:
        return "-"
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    local = moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    return f"{local} ({ago(moment)})"


def _where(s: ServerStatus) -> str:
    return s.socket or "" if s.mode == "socket" else f"127.0.0.1:{s.port}"


def _kernels(s: ServerStatus) -> str:
    if s.kernels is None:
        return "-"
    adopted = [k for k in s.surviving_kernels if k["server_restarts_survived"]]
    if not adopted:
        return str(s.kernels)
    most = max(int(k["server_restarts_survived"]) for k in adopted)
    return (
        f"{s.kernels} ({len(adopted)} carried over from an earlier server, up to {most} restart(s))"
    )


def _outputs(keep: bool | None) -> str:
    if keep is None:
        return "not kept while no browser is open (server started by an older labshare; `labshare restart`)"
    if keep:
        return "kept while no browser is open (not while the server itself is down)"
    return "lost while no browser is open (output keeping is off)"


def _details(s: ServerStatus) -> list[str]:
    rows = [
        ("pid", f"{s.pid or '-'} (supervisor {s.supervisor_pid or 'gone'})"),
        ("listens on", f"{_where(s)} ({'Unix socket' if s.mode == 'socket' else 'TCP'})"),
        ("serves", s.root_dir or "-"),
        ("started", _when(s.started_at)),
        ("restarts", str(s.restarts)),
        ("kernels", _kernels(s)),
        ("outputs", _outputs(s.keep_outputs)),
        ("last activity", _when(s.last_activity)),
        ("log", s.log_file),
    ]
    return [f"  {k:<14}{v}" for k, v in rows]


def _notes(notes: Sequence[str]) -> list[str]:
    return [f"note: {n}" for n in notes]


def reach(s: ServerStatus, user: str, host: str) -> list[str]:
    local = s.port or 8888
    target = s.socket if s.mode == "socket" else f"127.0.0.1:{s.port}"
    return [
        "From your laptop:",
        f"  labshare connect {user}@{host}",
        "Without labshare on the laptop:",
        f"  ssh -N -L {local}:{target} {user}@{host}",
        f"  then open http://127.0.0.1:{local}/lab and log in with the token from `labshare info`",
    ]


def status(s: ServerStatus) -> str:
    if s.running:
        head = "JupyterLab is running."
    elif s.supervisor_pid or s.pid:
        head = "JupyterLab is not answering."
    else:
        head = "JupyterLab is not running; start it with `labshare start`."
    body = _details(s) if (s.pid or s.supervisor_pid) else []
    return "\n".join(_notes(s.notes) + [head] + body)


def info(s: ServerInfo) -> str:
    lines = [status(s)]
    if s.running:
        lines += [f"  {'token':<14}{s.token}", f"  {'user':<14}{s.user}", f"  {'host':<14}{s.host}"]
    return "\n".join(lines)


def started(r: StartResult) -> str:
    head = "JupyterLab was already running." if r.already_running else "JupyterLab is running."
    return "\n".join(
        _notes(r.status.notes)
        + [head]
        + _details(r.status)
        + [""]
        + reach(r.status, r.user, r.host)
    )


def stopped(r: StopResult) -> str:
    if not r.stopped:
        return "\n".join(_notes(r.notes) + ["JupyterLab was not running."])
    kernels = (
        ""
        if r.kernels is None
        else f", {r.kernels} kernel{'s' if r.kernels != 1 else ''} shut down"
    )
    forced = " (it had to be killed)" if r.forced else ""
    if r.kept_kernels:
        forced += f"; {r.kept_kernels} kernel(s) left running for the next start"
    return "\n".join(_notes(r.notes) + [f"JupyterLab (pid {r.pid}) stopped{kernels}{forced}."])
