"""Find every Jupyter server on this host, its kernels, and what they use.

One psutil pass reads every process (pid, parent, owner, command line,
memory, CPU time); command lines tell the roles apart — labshare's
supervisor (`-m labshare.server.supervise`), Jupyter servers (`jupyter-lab`,
`jupyter lab|notebook|server`, `-m jupyterlab`…) and kernels (`-f
…/kernel-<id>.json`).  Every other process counts towards the nearest kernel
or server above it, so a notebook's `!python train.py` is charged to it.

labshare's kernels are started detached from their server (they survive
it), so they are tied to their server by their connection file, which lies
in the `runtime` folder next to the server's `--LabshareKernelManager.records_dir`;
other kernels by ancestry.

CPU % is measured once over a short interval for all processes together,
while the servers are asked for their sessions in parallel.  Secrets stay
with their owner: a server's token is read only for your own servers, or
by root, and never leaves this module.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import pwd
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from labshare import probe
from labshare.monitor.gpu import GpuDevice, GpuReader, GpuReading, read, read_nvml
from labshare.server.records import read_records

CPU_INTERVAL = 0.2
HTTP_TIMEOUT = 1.0
SUPERVISOR_MODULE = "labshare.server.supervise"
_SERVER_SCRIPTS = {"jupyter-lab": "lab", "jupyter-notebook": "notebook", "jupyter-server": "server",
                   "jupyter-nbclassic": "notebook"}
_SERVER_SUBCOMMANDS = {"lab": "lab", "notebook": "notebook", "server": "server", "nbclassic": "notebook"}
_SERVER_MODULES = {"jupyterlab": "lab", "notebook": "notebook", "jupyter_server": "server", "nbclassic": "notebook"}
# `jupyter lab build`, `jupyter server list`…: short-lived tools, not servers.
_NOT_SERVING = {"list", "stop", "build", "clean", "path", "paths", "workspaces", "workspace", "extension",
                "labextension", "password", "--version", "--help", "-h", "--help-all"}
_TOKEN_OPTIONS = ("identityprovider.token", "serverapp.token", "notebookapp.token", "token")
_EMPTY = {"", "''", '""'}
_CONFIG_EMPTY_TOKEN = re.compile(
    r"""^\s*c\.(?:IdentityProvider|ServerApp|NotebookApp)\.token\s*=\s*(?:''|"")\s*(?:#.*)?$""", re.MULTILINE
)


@dataclass
class Kernel:
    """One kernel (with the processes it started), as `ps --json` shows it."""

    pid: int
    kernel_id: str | None
    name: str | None
    notebook: str | None
    cpu_percent: float
    memory_bytes: int
    gpu_memory_bytes: int | None
    gpus: list[int] = field(default_factory=list)
    execution_state: str | None = None
    started_at: str | None = None
    python: str | None = None
    server_restarts_survived: int | None = None


@dataclass
class Server:
    """One Jupyter server and its kernels; figures include the kernels unless named `server_…`."""

    user: str
    uid: int
    pid: int | None
    managed: bool
    kind: str
    mode: str | None
    port: int | None
    socket: str | None
    started_at: str | None
    uptime_seconds: int | None
    token_required: bool | None
    cpu_percent: float
    memory_bytes: int
    gpu_memory_bytes: int | None
    kernels: list[Kernel] = field(default_factory=list)
    supervisor_pid: int | None = None
    server_cpu_percent: float = 0.0
    server_memory_bytes: int = 0
    gpus: list[int] = field(default_factory=list)
    root_dir: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Snapshot:
    """Everything `ps` and `top` show: servers, and the GPUs (or why there are none)."""

    servers: list[Server]
    gpus: list[GpuDevice]
    gpu_unavailable: str | None
    all_users: bool
    user: str
    taken_at: str


@dataclass
class _Proc:
    handle: psutil.Process
    pid: int
    ppid: int
    uid: int
    argv: list[str]
    created: float
    rss: int
    cpu: float
    read_at: float


@dataclass
class _Found:
    """A server being put together during one scan, before it becomes a `Server`."""

    proc: _Proc | None
    uid: int
    kind: str
    managed: bool
    options: dict[str, str]
    supervisor: _Proc | None = None
    state_dir: Path | None = None
    kernels: list[_Proc] = field(default_factory=list)
    token_required: bool | None = None
    notes: list[str] = field(default_factory=list)
    sessions: dict[str, str] = field(default_factory=dict)
    kernel_info: dict[str, dict[str, Any]] = field(default_factory=dict)
    survived: dict[str, int] = field(default_factory=dict)
    port: int | None = None
    socket: str | None = None


def _cpu_seconds(times: Any) -> float:
    return float(times.user + times.system) if times is not None else 0.0


def _processes() -> dict[int, _Proc]:
    found: dict[int, _Proc] = {}
    attrs = ["ppid", "uids", "cmdline", "create_time", "memory_info", "cpu_times"]
    for handle in psutil.process_iter(attrs):
        info = handle.info
        if not info.get("uids") or info.get("create_time") is None:
            continue
        mem = info.get("memory_info")
        found[handle.pid] = _Proc(
            handle=handle, pid=handle.pid, ppid=info.get("ppid") or 0, uid=info["uids"].real,
            argv=info.get("cmdline") or [], created=info["create_time"], rss=mem.rss if mem else 0,
            cpu=_cpu_seconds(info.get("cpu_times")), read_at=time.monotonic(),
        )
    return found


def _server_kind(argv: list[str]) -> str | None:
    """"lab", "notebook" or "server" when `argv` runs a Jupyter server, else None."""
    for i, arg in enumerate(argv[:3]):
        base = os.path.basename(arg)
        rest: list[str] | None = None
        kind = None
        if base in _SERVER_SCRIPTS:
            kind, rest = _SERVER_SCRIPTS[base], argv[i + 1 :]
        elif base == "jupyter" and i + 1 < len(argv) and argv[i + 1] in _SERVER_SUBCOMMANDS:
            kind, rest = _SERVER_SUBCOMMANDS[argv[i + 1]], argv[i + 2 :]
        elif arg == "-m" and i + 1 < len(argv):
            module = argv[i + 1]
            if module in _SERVER_MODULES:
                kind, rest = _SERVER_MODULES[module], argv[i + 2 :]
            elif module == "jupyter" and i + 2 < len(argv) and argv[i + 2] in _SERVER_SUBCOMMANDS:
                kind, rest = _SERVER_SUBCOMMANDS[argv[i + 2]], argv[i + 3 :]
        if kind is None or rest is None:
            continue
        positional = [a for a in rest if not a.startswith("-")]
        if (positional and positional[0] in _NOT_SERVING) or any(a in _NOT_SERVING for a in rest):
            return None
        return kind
    return None


def _is_supervisor(argv: list[str]) -> bool:
    return any(a == "-m" and argv[i + 1 : i + 2] == [SUPERVISOR_MODULE] for i, a in enumerate(argv[:3]))


def _connection_file(argv: list[str]) -> str | None:
    """The kernel connection file a kernel was started with (`-f PATH`), if `argv` is a kernel."""
    for i, arg in enumerate(argv):
        path = None
        if arg in ("-f", "--f", "--connection-file") and i + 1 < len(argv):
            path = argv[i + 1]
        elif arg.startswith(("--f=", "--connection-file=", "--KernelApp.connection_file=")):
            path = arg.split("=", 1)[1]
        if path and os.path.basename(path).startswith("kernel-") and path.endswith(".json"):
            return path
    return None


def _kernel_id(connection_file: str | None) -> str | None:
    if not connection_file:
        return None
    return os.path.basename(connection_file)[len("kernel-") : -len(".json")]


def _options(argv: list[str]) -> dict[str, str]:
    """Jupyter's `--Class.trait=value` / `--alias value` options, keys lower-cased."""
    opts: dict[str, str] = {}
    for i, arg in enumerate(argv):
        if not arg.startswith("--"):
            continue
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 < len(argv) and not argv[i + 1].startswith("-") and "." not in key:
                value = argv[i + 1]
            else:
                continue
        opts[key.lower()] = value
    return opts


def _first(opts: dict[str, str], *keys: str) -> str | None:
    for key in keys:
        if key in opts:
            return opts[key]
    return None


def _user_name(uid: int, cache: dict[int, str]) -> str:
    if uid not in cache:
        try:
            cache[uid] = pwd.getpwuid(uid).pw_name
        except KeyError:
            cache[uid] = str(uid)
    return cache[uid]


def _iso(created: float | None) -> str | None:
    if created is None:
        return None
    return dt.datetime.fromtimestamp(created, dt.timezone.utc).isoformat(timespec="seconds")


class Scanner:
    """Takes snapshots; keeps CPU times between them, so `top` measures over its refresh period."""

    def __init__(self, *, all_users: bool = False, gpu: GpuReader = read_nvml, interval: float = CPU_INTERVAL):
        self.all_users = all_users
        self.gpu = gpu
        self.interval = interval
        self.uid = os.getuid()
        self.privileged = os.geteuid() == 0
        self._names: dict[int, str] = {}
        self._previous: dict[tuple[int, float], tuple[float, float]] = {}

    def may_see_secrets(self, uid: int) -> bool:
        """Notebook paths need the owner's token: only the owner and root get them."""
        return self.privileged or uid == os.geteuid()

    def scan(self) -> Snapshot:
        began = time.monotonic()
        with ThreadPoolExecutor(max_workers=16) as pool:
            gpu_future = pool.submit(read, self.gpu)
            procs = _processes()
            found = self._find(procs)
            owners = self._attribute(procs, found)
            asks = [pool.submit(self._ask, f) for f in found]
            cpu = self._cpu(procs, owners, began)
            for ask in asks:
                ask.result()
            gpu = gpu_future.result()
        servers = [self._server(f, procs, owners, cpu, gpu) for f in found]
        servers.sort(key=lambda s: (s.user, s.started_at or "", s.pid or 0))
        return Snapshot(
            servers=servers, gpus=gpu.devices, gpu_unavailable=gpu.unavailable, all_users=self.all_users,
            user=_user_name(self.uid, self._names),
            taken_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        )

    # -- finding ---------------------------------------------------------------------------

    def _find(self, procs: dict[int, _Proc]) -> list[_Found]:
        supervisors = {p.pid: p for p in procs.values() if _is_supervisor(p.argv)}
        found: list[_Found] = []
        by_state: dict[Path, _Found] = {}
        by_pid: dict[int, _Found] = {}
        for proc in procs.values():
            if not self.all_users and proc.uid != self.uid:
                continue
            kind = _server_kind(proc.argv)
            if kind is None:
                continue
            opts = _options(proc.argv)
            records = opts.get("labsharekernelmanager.records_dir")
            supervisor = supervisors.get(proc.ppid)
            server = _Found(proc=proc, uid=proc.uid, kind=kind, managed=bool(records or supervisor),
                            options=opts, supervisor=supervisor)
            if records:
                server.state_dir = Path(records).parent
                by_state[server.state_dir] = server
            if server.managed:
                server.token_required = True
                if supervisor is None:
                    server.notes.append("its supervisor is gone, so a crash would not be restarted")
            else:
                server.token_required = _token_from_argv(opts)
            found.append(server)
            by_pid[proc.pid] = server
        serving = {f.supervisor.pid for f in found if f.supervisor}
        for pid, sup in supervisors.items():
            if pid in serving or (not self.all_users and sup.uid != self.uid):
                continue
            waiting = _Found(proc=None, uid=sup.uid, kind="lab", managed=True, options={}, supervisor=sup,
                             token_required=True, notes=["Jupyter is being (re)started by the supervisor"])
            found.append(waiting)
        self._kernels(procs, found, by_state, by_pid)
        return found

    def _kernels(
        self, procs: dict[int, _Proc], found: list[_Found], by_state: dict[Path, _Found], by_pid: dict[int, _Found]
    ) -> None:
        orphans: dict[tuple[int, Path | None], _Found] = {}
        for proc in procs.values():
            conn = _connection_file(proc.argv)
            if conn is None or (not self.all_users and proc.uid != self.uid):
                continue
            runtime = Path(conn).parent
            server = by_state.get(runtime.parent) if runtime.name == "runtime" else None
            if server is None:
                server = self._ancestor(proc, procs, by_pid)
            if server is None:
                labshare_dir = runtime.parent if runtime.name == "runtime" and "labshare" in runtime.parts else None
                key = (proc.uid, labshare_dir)
                if key not in orphans:
                    waiting = [f for f in found if f.proc is None and f.uid == proc.uid]
                    if len(waiting) == 1 and labshare_dir is not None:
                        orphans[key] = waiting[0]
                    else:
                        orphans[key] = _Found(
                            proc=None, uid=proc.uid, kind="kernels", managed=labshare_dir is not None,
                            options={}, state_dir=labshare_dir,
                            notes=["no server runs for these kernels"
                                   + ("; the next `labshare start` adopts them" if labshare_dir else "")],
                        )
                        found.append(orphans[key])
                server = orphans[key]
            server.kernels.append(proc)

    @staticmethod
    def _ancestor(proc: _Proc, procs: dict[int, _Proc], by_pid: dict[int, _Found]) -> _Found | None:
        seen = 0
        pid = proc.ppid
        while pid > 1 and seen < 64:
            if pid in by_pid:
                return by_pid[pid]
            parent = procs.get(pid)
            if parent is None:
                return None
            pid, seen = parent.ppid, seen + 1
        return None

    def _attribute(self, procs: dict[int, _Proc], found: list[_Found]) -> dict[int, int]:
        """Map every relevant pid to the role pid (kernel or server) it counts towards."""
        roles: dict[int, int] = {}
        for server in found:
            if server.proc:
                roles[server.proc.pid] = server.proc.pid
            if server.supervisor:
                roles[server.supervisor.pid] = server.proc.pid if server.proc else server.supervisor.pid
            for kernel in server.kernels:
                roles[kernel.pid] = kernel.pid
        owner: dict[int, int] = {}

        def resolve(pid: int, depth: int = 0) -> int | None:
            if pid in roles:
                return roles[pid]
            if pid in owner:
                return owner[pid] or None
            proc = procs.get(pid)
            if proc is None or proc.ppid <= 1 or depth > 64:
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

    # -- measuring -------------------------------------------------------------------------

    def _cpu(self, procs: dict[int, _Proc], owners: dict[int, int], began: float) -> dict[int, float]:
        """CPU % per pid over the interval (or since the last scan), for the pids that count."""
        first: dict[int, tuple[float, float]] = {}
        for pid in owners:
            proc = procs[pid]
            before = self._previous.get((pid, proc.created))
            if before is not None and proc.read_at - before[1] >= 0.05:
                first[pid] = before
        missing = [pid for pid in owners if pid not in first]
        current = {pid: (procs[pid].cpu, procs[pid].read_at) for pid in owners}
        if missing:
            time.sleep(max(0.0, began + self.interval - time.monotonic()))
            for pid in missing:
                first[pid] = current[pid]
                with contextlib.suppress(psutil.Error):
                    current[pid] = (_cpu_seconds(procs[pid].handle.cpu_times()), time.monotonic())
        self._previous = {(pid, procs[pid].created): current[pid] for pid in owners}
        percent = {}
        for pid in owners:
            (c0, t0), (c1, t1) = first[pid], current[pid]
            percent[pid] = round(max(0.0, (c1 - c0) / (t1 - t0) * 100), 1) if t1 > t0 else 0.0
        return percent

    # -- asking the servers ----------------------------------------------------------------

    def _ask(self, server: _Found) -> None:
        """Fill in what only the server knows: whether it wants a token, and (if allowed) its sessions."""
        if server.proc is None:
            return
        opts = server.options
        server.socket = _first(opts, "serverapp.sock", "notebookapp.sock", "sock") or None
        port = _first(opts, "serverapp.port", "notebookapp.port", "port")
        server.port = int(port) if port and port.isdigit() else None
        secrets = self.may_see_secrets(server.uid)
        token: str | None = None
        if server.managed and secrets and server.state_dir is not None:
            with contextlib.suppress(OSError):
                token = (server.state_dir / "token").read_text().strip() or None
            server.survived = {
                r["kernel_id"]: int(r.get("survived", 0)) for r in read_records(server.state_dir / "kernels")
            }
        elif not server.managed and secrets:
            runtime = _runtime_info(server.proc)
            if runtime:
                server.port = server.port or runtime.get("port") or None
                server.socket = server.socket or runtime.get("sock") or None
                token = runtime.get("token") or None
            if server.token_required is None and _config_says_no_token(server.proc):
                server.token_required = False
        if server.socket is None and server.port is None:
            server.notes.append("its port is not on its command line (only its owner or root can see it)")
            return
        address = probe.Address(socket=server.socket, port=server.port)
        if not server.managed:
            with contextlib.suppress(OSError, ValueError):
                answer = probe.request(address, "/api/status", timeout=HTTP_TIMEOUT)
                if answer.status == 200:
                    server.token_required = False
                elif answer.status in (401, 403):
                    server.token_required = True
        if not secrets or (token is None and server.token_required is not False):
            return
        with contextlib.suppress(OSError, ValueError):
            sessions = probe.request(address, "/api/sessions", token=token, timeout=HTTP_TIMEOUT)
            if sessions.status == 200:
                for session in sessions.json() or []:
                    kernel = session.get("kernel") or {}
                    if kernel.get("id") and session.get("path"):
                        server.sessions[kernel["id"]] = session["path"]
        with contextlib.suppress(OSError, ValueError):
            kernels = probe.request(address, "/api/kernels", token=token, timeout=HTTP_TIMEOUT)
            if kernels.status == 200:
                server.kernel_info = {k["id"]: k for k in kernels.json() or [] if k.get("id")}

    # -- putting it together ---------------------------------------------------------------

    def _server(
        self, found: _Found, procs: dict[int, _Proc], owners: dict[int, int], cpu: dict[int, float],
        gpu: GpuReading,
    ) -> Server:
        gpu_bytes = gpu.memory_by_pid()
        gpu_devices = gpu.devices_by_pid()
        members: dict[int, list[int]] = {}
        for pid, role in owners.items():
            members.setdefault(role, []).append(pid)

        def totals(role: int) -> tuple[float, int, int | None, list[int]]:
            pids = members.get(role, [])
            devices = sorted({d for p in pids for d in gpu_devices.get(p, [])})
            used = None if gpu.unavailable else sum(gpu_bytes.get(p, 0) for p in pids)
            return (round(sum(cpu.get(p, 0.0) for p in pids), 1), sum(procs[p].rss for p in pids), used, devices)

        kernels = []
        for proc in sorted(found.kernels, key=lambda k: k.created):
            kid = _kernel_id(_connection_file(proc.argv))
            k_cpu, k_mem, k_gpu, k_devices = totals(proc.pid)
            info = found.kernel_info.get(kid or "", {})
            kernels.append(Kernel(
                pid=proc.pid, kernel_id=kid, name=info.get("name"), notebook=found.sessions.get(kid or ""),
                cpu_percent=k_cpu, memory_bytes=k_mem, gpu_memory_bytes=k_gpu, gpus=k_devices,
                execution_state=info.get("execution_state"), started_at=_iso(proc.created),
                python=proc.argv[0] if proc.argv else None,
                server_restarts_survived=found.survived.get(kid or ""),
            ))
        s_cpu, s_mem, s_gpu, s_devices = (0.0, 0, None if gpu.unavailable else 0, [])
        role = found.proc.pid if found.proc else (found.supervisor.pid if found.supervisor else None)
        if role is not None:
            s_cpu, s_mem, s_gpu, s_devices = totals(role)
        start = found.supervisor or found.proc or (min(found.kernels, key=lambda k: k.created) if found.kernels else None)
        opts = found.options
        mode = None
        if found.socket or found.port or found.proc:
            mode = "socket" if found.socket else "tcp"
        all_gpu = None if s_gpu is None else s_gpu + sum(k.gpu_memory_bytes or 0 for k in kernels)
        return Server(
            user=_user_name(found.uid, self._names), uid=found.uid, pid=found.proc.pid if found.proc else None,
            managed=found.managed, kind=found.kind, mode=mode, port=found.port, socket=found.socket,
            started_at=_iso(start.created) if start else None,
            uptime_seconds=int(time.time() - start.created) if start else None,
            token_required=found.token_required,
            cpu_percent=round(s_cpu + sum(k.cpu_percent for k in kernels), 1),
            memory_bytes=s_mem + sum(k.memory_bytes for k in kernels),
            gpu_memory_bytes=all_gpu, kernels=kernels,
            supervisor_pid=found.supervisor.pid if found.supervisor else None,
            server_cpu_percent=s_cpu, server_memory_bytes=s_mem,
            gpus=sorted(set(s_devices).union(*(k.gpus for k in kernels))),
            root_dir=_first(opts, "serverapp.root_dir", "notebookapp.notebook_dir", "serverapp.notebook_dir",
                            "notebook-dir"),
            notes=found.notes,
        )


def _token_from_argv(opts: dict[str, str]) -> bool | None:
    """False when the command line turns the token off (`--IdentityProvider.token=''`), else unknown."""
    for key in _TOKEN_OPTIONS:
        if key in opts:
            return opts[key] not in _EMPTY
    return None


def _environ(proc: _Proc) -> dict[str, str]:
    try:
        return proc.handle.environ()
    except (psutil.Error, OSError):
        return {}


def _runtime_info(proc: _Proc) -> dict[str, Any] | None:
    """The server's own `jpserver-<pid>.json` (port, socket, token), readable by its owner and root."""
    env = _environ(proc)
    home = env.get("HOME", "")
    candidates = [env.get("JUPYTER_RUNTIME_DIR", "")]
    if env.get("JUPYTER_DATA_DIR"):
        candidates.append(os.path.join(env["JUPYTER_DATA_DIR"], "runtime"))
    if env.get("XDG_DATA_HOME"):
        candidates.append(os.path.join(env["XDG_DATA_HOME"], "jupyter", "runtime"))
    if home:
        candidates.append(os.path.join(home, ".local", "share", "jupyter", "runtime"))
    for folder in filter(None, candidates):
        for name in (f"jpserver-{proc.pid}.json", f"nbserver-{proc.pid}.json"):
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(Path(folder, name).read_text())
                if isinstance(data, dict):
                    return data
    return None


def _config_says_no_token(proc: _Proc) -> bool:
    """Whether the owner's Jupyter config sets an empty token (read only by the owner or root)."""
    env = _environ(proc)
    folder = env.get("JUPYTER_CONFIG_DIR") or (os.path.join(env["HOME"], ".jupyter") if env.get("HOME") else "")
    if not folder:
        return False
    for app in ("jupyter_server_config", "jupyter_notebook_config"):
        with contextlib.suppress(OSError):
            if _CONFIG_EMPTY_TOKEN.search(Path(folder, f"{app}.py").read_text()):
                return True
        with contextlib.suppress(OSError, ValueError, AttributeError):
            data = json.loads(Path(folder, f"{app}.json").read_text())
            for section in ("IdentityProvider", "ServerApp", "NotebookApp"):
                if data.get(section, {}).get("token") == "":
                    return True
    return False


def snapshot(*, all_users: bool = False, gpu: GpuReader = read_nvml) -> Snapshot:
    """One look at the host, as `labshare ps` shows it."""
    return Scanner(all_users=all_users, gpu=gpu).scan()
