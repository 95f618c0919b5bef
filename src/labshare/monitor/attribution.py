"""Which server each process belongs to, and which kernel or server its usage is charged to.

Command lines tell the roles apart (`argv`); every other process counts
towards the nearest kernel or server above it, so a notebook's `!python
train.py` is charged to that notebook.  labshare's kernels are started
detached from their server (they survive it), so they are tied to it by
their connection file, which lies in the `runtime` folder next to the
server's `--LabshareKernelManager.records_dir`; other kernels by ancestry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from labshare.monitor import argv as cmd
from labshare.monitor.sampling import Proc

_MAX_DEPTH = 64


@dataclass
class Found:
    """A server being put together during one scan: its processes, before it becomes a `Server`."""

    proc: Proc | None
    uid: int
    kind: str
    managed: bool
    options: dict[str, str]
    supervisor: Proc | None = None
    state_dir: Path | None = None
    kernels: list[Proc] = field(default_factory=list)
    token_required: bool | None = None
    notes: list[str] = field(default_factory=list)
    hub: bool = False  # started by JupyterHub (`labshare singleuser`), which restarts it

    @property
    def role(self) -> int | None:
        """The pid the server's own usage is charged to: Jupyter, or its supervisor while it restarts."""
        if self.proc:
            return self.proc.pid
        return self.supervisor.pid if self.supervisor else None


def find(procs: dict[int, Proc], only_uid: int | None) -> list[Found]:
    """Every server (running, restarting, or only its kernels left) of `only_uid`, or of everyone."""

    def visible(proc: Proc) -> bool:
        return only_uid is None or proc.uid == only_uid

    supervisors = {p.pid: p for p in procs.values() if cmd.is_supervisor(p.argv)}
    found: list[Found] = []
    by_state: dict[Path, Found] = {}
    by_pid: dict[int, Found] = {}
    for proc in procs.values():
        kind = cmd.server_kind(proc.argv) if visible(proc) else None
        if kind is None:
            continue
        server = _server(proc, kind, supervisors.get(proc.ppid))
        if server.state_dir is not None:
            by_state[server.state_dir] = server
        found.append(server)
        by_pid[proc.pid] = server
    serving = {f.supervisor.pid for f in found if f.supervisor}
    for pid, sup in supervisors.items():
        if pid not in serving and visible(sup):
            found.append(
                Found(
                    proc=None,
                    uid=sup.uid,
                    kind="lab",
                    managed=True,
                    options={},
                    supervisor=sup,
                    token_required=True,
                    notes=["Jupyter is being (re)started by the supervisor"],
                )
            )
    for proc in procs.values():
        if visible(proc) and cmd.connection_file(proc.argv) is not None:
            _kernel_of(proc, procs, found, by_state, by_pid).kernels.append(proc)
    return found


def _server(proc: Proc, kind: str, supervisor: Proc | None) -> Found:
    opts = cmd.options(proc.argv)
    records = opts.get("labsharekernelmanager.records_dir")
    server = Found(
        proc=proc,
        uid=proc.uid,
        kind=kind,
        managed=bool(records or supervisor),
        options=opts,
        supervisor=supervisor,
        state_dir=Path(records).parent if records else None,
        hub=cmd.spawned_by_hub(proc.argv),
    )
    if server.hub:
        server.token_required = True
        server.notes.append("started by JupyterHub")
    elif server.managed:
        server.token_required = True
        if supervisor is None:
            server.notes.append("its supervisor is gone, so a crash would not be restarted")
    else:
        server.token_required = cmd.token_required(opts)
    return server


def _kernel_of(
    proc: Proc,
    procs: dict[int, Proc],
    found: list[Found],
    by_state: dict[Path, Found],
    by_pid: dict[int, Found],
) -> Found:
    """The server a kernel belongs to; kernels no server runs for are grouped by owner and state folder."""
    runtime = Path(cmd.connection_file(proc.argv) or "").parent
    server = by_state.get(runtime.parent) if runtime.name == "runtime" else None
    if server is None:
        server = _ancestor(proc, procs, by_pid)
    if server is not None:
        return server
    labshare_dir = (
        runtime.parent if runtime.name == "runtime" and "labshare" in runtime.parts else None
    )
    for other in found:
        if (
            other.proc is None
            and other.uid == proc.uid
            and other.kind == "kernels"
            and other.state_dir == labshare_dir
        ):
            return other
    waiting = [f for f in found if f.proc is None and f.uid == proc.uid and f.kind != "kernels"]
    if len(waiting) == 1 and labshare_dir is not None:
        return waiting[0]
    orphans = Found(
        proc=None,
        uid=proc.uid,
        kind="kernels",
        managed=labshare_dir is not None,
        options={},
        state_dir=labshare_dir,
        notes=[
            "no server runs for these kernels"
            + ("; the next `labshare start` adopts them" if labshare_dir else "")
        ],
    )
    found.append(orphans)
    return orphans


def _ancestor(proc: Proc, procs: dict[int, Proc], by_pid: dict[int, Found]) -> Found | None:
    seen = 0
    pid = proc.ppid
    while pid > 1 and seen < _MAX_DEPTH:
        if pid in by_pid:
            return by_pid[pid]
        parent = procs.get(pid)
        if parent is None:
            return None
        pid, seen = parent.ppid, seen + 1
    return None


def owners(procs: dict[int, Proc], found: list[Found]) -> dict[int, int]:
    """Map every relevant pid to the role pid (kernel or server) it counts towards."""
    roles: dict[int, int] = {}
    for server in found:
        if server.role is not None:
            for proc in (server.supervisor, server.proc):
                if proc:
                    roles[proc.pid] = server.role
        for kernel in server.kernels:
            roles[kernel.pid] = kernel.pid
    owner: dict[int, int] = {}

    def resolve(pid: int, depth: int = 0) -> int | None:
        if pid in roles:
            return roles[pid]
        if pid in owner:
            return owner[pid] or None
        proc = procs.get(pid)
        if proc is None or proc.ppid <= 1 or depth > _MAX_DEPTH:
            return None
        got = resolve(proc.ppid, depth + 1)
        owner[pid] = got or 0
        return got

    result: dict[int, int] = dict(roles)
    for pid in procs:
        got = resolve(pid)
        if got is not None:
            result[pid] = got
    return result
