"""start / stop / restart for the member's server.

Built from the pieces beside it: `launch` decides the command line, the
supervisor keeps it alive, `state` remembers it, `probe` asks it, `status`
reports it.  Every function returns plain data for `render`; nothing here
prints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from labshare import config, probe, proc
from labshare.config import ServerPolicy, Site
from labshare.envs import default as default_kernel
from labshare.envs import refresh as refresh_kernels
from labshare.envs.kernels import prune_stale
from labshare.envs.kerneltools import KernelTools
from labshare.errors import LabshareError
from labshare.files import ensure_private_dir, remove, write_atomic
from labshare.gpus.assign import GpuPolicy
from labshare.listeners import describe, free_port, listener, port_is_free
from labshare.paths import Paths
from labshare.records.server import LaunchSpec
from labshare.server import launch, outputs, ports, records, versions
from labshare.server import state as st
from labshare.server.status import (
    ServerStatus,
    address,
    forget,
    observe,
    running_hub_server,
    socket_in_use,
    status_of,
    under_hub,
    whoami,
)
from labshare.server.supervise import STOP_GRACE_SECONDS
from labshare.server.token import new_token, read_token, write_token


@dataclass
class StartResult:
    status: ServerStatus
    already_running: bool
    user: str
    host: str


@dataclass
class StopResult:
    stopped: bool
    pid: int | None
    kernels: int | None
    forced: bool = False
    notes: list[str] = field(default_factory=list)
    kept_kernels: int = 0


def prepare(paths: Paths) -> None:
    ensure_private_dir(paths.state_root)
    ensure_private_dir(paths.state_dir)
    ensure_private_dir(paths.runtime_dir)
    ensure_private_dir(paths.kernel_records_dir)


def resolve_root(paths: Paths, root_dir: Path | None, default: str = "~/projects") -> Path:
    """The directory Jupyter serves: the policy's (`~/projects`, made if missing), never the home or above."""
    chosen = root_dir is None
    if root_dir is None:
        root = paths.home / default[2:] if default.startswith("~/") else Path(default)
    else:
        root = Path(os.path.expanduser(str(root_dir)))
    root = root.absolute()
    if root.exists() and not root.is_dir():
        raise LabshareError(f"{root} is a file, not a directory; pass a directory with --dir.")
    if not root.exists():
        if not chosen:
            raise LabshareError(
                f"The directory {root} does not exist; create it or pass another with --dir."
            )
        root.mkdir(parents=True)
    root = root.resolve()
    home = paths.home.resolve()
    if root == home or root in home.parents:
        raise LabshareError(
            f"Serving {root} would put your home directory (with ~/.ssh and labshare's token) in the "
            "file browser; pass a project folder such as --dir ~/projects."
        )
    return root


def _check_port(port: int) -> None:
    """Ports below 1024 need root and belong to system services, as the sentence says."""
    if not 1024 <= port <= 65535:
        raise LabshareError(
            f"Port {port} is not a valid TCP port; pick one between 1024 and 65535."
        )
    if not port_is_free(port):
        raise LabshareError(
            f"Port {port} on 127.0.0.1 is already in use by {describe(listener(port))}; "
            "pick another with --port or ask them to stop it."
        )


def _spawn_supervisor(
    paths: Paths, prefix: list[str], env: dict[str, str]
) -> subprocess.Popen[str]:
    """Start the supervisor in a session of its own, so a logout or a dropped ssh cannot reach it."""
    log = os.open(paths.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        return proc.start(
            [*prefix, sys.executable, "-m", "labshare.server.supervise"],
            env={**os.environ, **env},
            stdout=log,
            stderr=log,
            new_session=True,
            what="starting labshare's supervisor",
        )
    finally:
        os.close(log)


def _tcp_port(paths: Paths, site: Site, user: str, port: int | None) -> int:
    """The port asked for, else the member's assigned or claimed one, else any free one."""
    if port is None:
        port = ports.port_for(site, user, paths.uid) or free_port()
    else:
        owner = ports.owner_of(site, port)
        if owner is not None and owner != user:
            raise LabshareError(
                f"Port {port} belongs to {owner} in the site policy ({site.path}); "
                "run `labshare start --tcp` without --port to get your own."
            )
    _check_port(port)
    return port


def _launch(
    paths: Paths,
    root: Path,
    mode: str,
    port: int | None,
    token: str | None,
    policy: ServerPolicy,
    gpus: GpuPolicy,
    keep_outputs: bool = True,
) -> st.ServerState:
    jupyter = launch.find_jupyter_lab()
    sock: Path | None = None
    if mode == "socket":
        sock = paths.socket
        ensure_private_dir(sock.parent)
        if sock.exists():
            if socket_in_use(sock):
                raise LabshareError(
                    f"Something already listens on {sock} but labshare has no record of it; "
                    "stop that Jupyter (see `ps -u $USER -f`) and try again."
                )
            remove(sock)
    argv = launch.jupyter_argv(
        jupyter,
        root_dir=root,
        socket=sock,
        port=port,
        extra=launch.policy_args(policy, gpus)
        + launch.member_args()
        + records.jupyter_args(paths)
        + outputs.jupyter_args(keep_outputs, paths.state_dir),
    )
    prefix = launch.limit_prefix(policy.limits, os.environ)
    spec = LaunchSpec(
        argv=tuple(argv),
        cwd=str(root),
        log_file=str(paths.log_file),
        runtime_dir=str(paths.runtime_dir),
        socket=str(sock) if sock else None,
    )
    write_token(paths, token or new_token())
    st.launch_store(paths).write(spec)
    tools = launch.tools_env(os.environ, KernelTools.of(paths.data_home).bin_dir)
    supervisor = _spawn_supervisor(paths, prefix or [], {**launch.policy_env(gpus), **tools})
    limits = {k: v for k, v in dataclasses.asdict(policy.limits).items() if v is not None}
    record = st.ServerState(
        supervisor_pid=supervisor.pid,
        supervisor_started=st.process_started(supervisor.pid) or 0.0,
        mode=mode,
        root_dir=str(root),
        socket=str(sock) if sock else None,
        port=None if sock else port,
        started_at=st.now_iso(),
        socket_fallback=bool(sock) and paths.socket_is_fallback,
        limits=limits,
        limits_enforced=prefix is not None,
        keep_outputs=keep_outputs,
    )
    st.save(paths, record)
    return record


def _log_since(paths: Paths, offset: int, lines: int = 15) -> str:
    try:
        with open(paths.log_file, "rb") as handle:
            handle.seek(offset)
            return proc.tail(handle.read().decode(errors="replace"), lines)
    except OSError:
        return ""


def _wait_ready(
    paths: Paths,
    record: st.ServerState,
    timeout: float,
    log_offset: int,
    suspects: list[str] | None = None,
) -> None:
    """Wait for Jupyter to answer; if it died instead, the error shows its log and any `suspects` first."""
    token = read_token(paths)
    addr = address(record)
    deadline = time.monotonic() + timeout
    while True:
        if probe.status(addr, token, timeout=2.0) is not None:
            return
        current = st.load(paths)
        failed = not st.alive(record.supervisor_pid, record.supervisor_started) or (
            current is not None and current.restarts > 0
        )
        if failed:
            _terminate(paths, record)
            raise LabshareError(
                "JupyterLab did not start; the last lines of its log are below "
                f"(all of it: {paths.log_file}).",
                detail="\n".join([*(suspects or []), _log_since(paths, log_offset)]),
            )
        if time.monotonic() > deadline:
            raise LabshareError(
                f"JupyterLab did not answer within {timeout:.0f} s; it may still be starting: "
                "check `labshare status` and `labshare logs`."
            )
        time.sleep(0.02)


def _assert_token_required(paths: Paths, record: st.ServerState) -> None:
    """A user's own Jupyter config could set an empty token; never leave such a server up."""
    try:
        answer = probe.request(address(record), "/api/status", timeout=3.0)
    except OSError:
        return
    if answer.status != 403:
        _terminate(paths, record)
        raise LabshareError(
            "Jupyter answered without a token, so your Jupyter config disables authentication "
            "(look for `token = ''` in ~/.jupyter/jupyter_server_config.*); remove it and start again."
        )


def start(
    paths: Paths,
    *,
    root_dir: Path | None = None,
    tcp: bool = False,
    port: int | None = None,
    timeout: float = 120.0,
    token: str | None = None,
    keep_outputs: bool | None = None,
) -> StartResult:
    """Start the member's server; `keep_outputs` None follows the site policy (on unless turned off)."""
    prepare(paths)
    user, host = whoami()
    site, policy = config.effective(paths.site_config, paths.user_config_file, user)
    with st.locked(paths):
        record, notes = observe(paths)
        already = record is not None
        if record is None:
            hub = running_hub_server(paths)
            if hub is not None:
                raise LabshareError(
                    f"{under_hub(hub)}; a second server would share its kernels, so none was started."
                )
            root = resolve_root(paths, root_dir, policy.root_dir)
            mode = "tcp" if tcp or port is not None else policy.mode
            if mode == "tcp":
                port = _tcp_port(paths, site, user, port)
            offset = paths.log_file.stat().st_size if paths.log_file.exists() else 0
            pruned = prune_stale()
            if pruned:
                notes.append(
                    f"Removed labshare kernels whose environment is gone: {', '.join(pruned)}."
                )
            keep = policy.keep_outputs if keep_outputs is None else keep_outputs
            unsupported = versions.check(keep)
            notes += unsupported
            gpus = GpuPolicy.of(site.gpus, policy.limits)
            record = _launch(paths, root, mode, port, token, policy, gpus, keep)
    if not already:  # a server already running may be an older labshare's, whose Lab would lease a gated spec twice
        notes += refresh_kernels.on_start()  # while Jupyter boots
    notes += default_kernel.ensure(paths.data_home)
    if already:
        _wait_ready(paths, record, timeout, log_offset=0)
    else:
        _wait_ready(paths, record, timeout, log_offset=offset, suspects=unsupported)
        _assert_token_required(paths, record)
    result = status_of(paths, st.load(paths) or record, notes)
    return StartResult(status=result, already_running=already, user=user, host=host)


def _tree(record: st.ServerState, spare: frozenset[int] = frozenset()) -> list[object]:
    """The supervisor, Jupyter and every kernel below them, less the `spare` pids and their children."""
    import psutil

    procs: dict[int, psutil.Process] = {}
    for pid, started in (
        (record.supervisor_pid, record.supervisor_started),
        (record.pid, record.pid_started),
    ):
        if pid is None or not st.alive(pid, started):
            continue
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            procs[pid] = process
            for child in process.children(recursive=True):
                procs[child.pid] = child
    for pid in spare:
        procs.pop(pid, None)
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(pid).children(recursive=True):
                procs.pop(child.pid, None)
    return list(procs.values())


def _end_orphan_kernels(paths: Paths) -> int:
    """Kernels kept from an earlier server that no server shut down: end them, drop their records."""
    ended = 0
    for record in records.read_records(paths.kernel_records_dir):
        if records.running(record):
            with contextlib.suppress(OSError):
                os.killpg(record.pgid or record.pid, signal.SIGKILL)
            ended += 1
        records.drop(paths.kernel_records_dir, record)
    return ended


def _forget_if_current(paths: Paths, record: st.ServerState) -> None:
    """Clean up after `record`'s server unless a newer server has taken its place meanwhile."""
    with st.locked(paths):
        current = st.load(paths)
        if current is None or current.supervisor_pid == record.supervisor_pid:
            forget(paths, record)


def _terminate(
    paths: Paths,
    record: st.ServerState,
    grace: float = STOP_GRACE_SECONDS,
    spare: frozenset[int] = frozenset(),
) -> None:
    """SIGTERM, then SIGKILL after `grace`: for the whole tree, less the `spare` kernels."""
    proc.end(_tree(record, spare), grace)
    _forget_if_current(paths, record)


def stop(
    paths: Paths, *, grace: float = STOP_GRACE_SECONDS, keep_kernels: bool = False
) -> StopResult:
    """Ask Jupyter to shut down (kernels too, unless kept for the next server), make sure, clean up."""
    record, notes = observe(paths)
    if record is None:
        if not keep_kernels and _end_orphan_kernels(paths):
            notes.append("Kernels kept from an earlier server were shut down.")
        return StopResult(stopped=False, pid=None, kernels=None, notes=notes)
    if keep_kernels:
        write_atomic(paths.keep_kernels_marker, "")
    spare = (
        frozenset(r.pid for r in records.living(paths.kernel_records_dir))
        if keep_kernels
        else frozenset()
    )
    procs = _tree(record, spare)
    kernels = None
    addr = address(record)
    with contextlib.suppress(OSError, LabshareError):
        token = read_token(paths)
        answer = probe.status(addr, token, timeout=3.0)
        kernels = answer.get("kernels") if answer else None
        probe.request(addr, "/api/shutdown", token=token, method="POST", timeout=5.0)
    forced = bool(proc.wait_gone(procs, grace))
    if forced:
        _terminate(paths, record, grace=5.0, spare=spare)
    else:
        _forget_if_current(paths, record)
    if not keep_kernels:
        _end_orphan_kernels(paths)
    return StopResult(
        stopped=True,
        pid=record.pid,
        kernels=kernels,
        forced=forced,
        notes=notes,
        kept_kernels=len(spare),
    )


def restart(paths: Paths, *, timeout: float = 120.0, keep_kernels: bool = True) -> StartResult:
    """Stop and start again with the same folder, mode, port and token; running kernels carry over."""
    record, _ = observe(paths)
    if record is None:
        return start(paths, timeout=timeout)
    token = read_token(paths)
    stop(paths, keep_kernels=keep_kernels)
    return start(
        paths,
        root_dir=Path(record.root_dir),
        tcp=record.mode == "tcp",
        port=record.port,
        timeout=timeout,
        token=token,
        keep_outputs=record.keep_outputs,
    )
