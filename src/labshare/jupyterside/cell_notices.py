"""Inside Jupyter: notices of long cells, kernels that died, and GPU reclaim, whichever client ran the kernel.

A Jupyter server extension.  The browser may be closed (cells run on the
server side with output keeping), or the client may be VS Code or any
other that uses this server's kernels, so cells are watched where they all
meet: each kernel's iopub.  An `execute_input` starts a run; the kernel's
`idle` after the last request ends it, unless another queued cell starts
within `grace`, so a "Run all" of many cells is one run and one notice.
An `error` on the way is kept, last line first.  The notebook is the
session manager's.  A kernel that dies is learnt from Jupyter's restarter;
whether the OOM killer did it is read from this server's cgroup
(`memory.events` counts `oom_kill`, the memory cap's too), and said only
when the count rose and the kernel died of SIGKILL.  Writing a notice is
`notify.events.emit`'s job, which reads the member's settings each time.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.session import Session
from tornado.ioloop import PeriodicCallback
from traitlets import Float
from traitlets.config import LoggingConfigurable

from labshare.jupyterside.sessions import notebook_of
from labshare.notify import events
from labshare.notify.runs import Runs, hear
from labshare.paths import Paths


@dataclass
class Watch:
    kernel_id: str
    stream: Any
    session: Session
    runs: Runs = field(default_factory=Runs)
    cells: bool = True  # False: the GPU gate ran this kernel, and its watcher tells of its cells
    timer: asyncio.TimerHandle | None = None
    cgroup: Path | None = None  # the kernel's memory cgroup, as of its last cell's start
    dead_pid: int | None = None  # the process that died, until Jupyter has started the next one
    oom_kills: int | None = None  # its OOM kills then
    callbacks: list[tuple[Any, str]] = field(default_factory=list)


def gated(kernel: Any) -> bool:
    """Whether this kernel was started through labshare's GPU gate, which then left a watcher of its
    cells (`notify.kernel_watch`): a Lab started by hand runs a kernelspec's argv as it is, while
    labshare's own provisioner runs the kernel without the gate."""
    from labshare.gpus.gate import Gated

    argv = getattr(getattr(kernel, "kernel_spec", None), "argv", None) or []
    own = type(getattr(kernel, "provisioner", None)).__name__ == "LabshareProvisioner"
    return not own and Gated.of(argv) is not None


def running(pid: int) -> bool:
    """Whether `pid` runs: not gone, and not a zombie (whose cgroup reads as the root one)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def memory_cgroup(pid: int | str = "self") -> Path | None:
    """The memory cgroup of a running process: cgroup v2's unified directory, or v1's memory hierarchy."""
    if isinstance(pid, int) and not running(pid):
        return None
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        number, controllers, where = (line.split(":", 2) + ["", ""])[:3]
        if "memory" in controllers.split(","):
            v1 = Path("/sys/fs/cgroup/memory") / where.lstrip("/")
            if (v1 / "memory.oom_control").exists():
                return v1
        if number == "0":
            v2 = Path("/sys/fs/cgroup") / where.lstrip("/")
            if (v2 / "memory.events").exists():
                return v2
    return None


def oom_kills(where: Path | None) -> int | None:
    """Processes of the cgroup (and below) the OOM killer ended: `oom_kill` of v2's `memory.events`
    or of v1's `memory.oom_control`."""
    if where is None:
        return None
    for name in ("memory.events", "memory.oom_control"):
        try:
            text = (where / name).read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
    return None


def memory_cap(where: Path | None) -> str | None:
    """The cgroup's memory limit in words (the memory cap's systemd scope sets it), or None."""
    if where is None:
        return None
    for name in ("memory.max", "memory.limit_in_bytes"):
        try:
            value = (where / name).read_text().strip()
        except OSError:
            continue
        if value.isdigit() and int(value) < 1 << 60:
            return f"{int(value) / (1 << 20):.0f} MiB"
        return None
    return None


def death(
    returncode: int | None, oom_before: int | None, oom_after: int | None, cap: str | None
) -> str:
    """What can honestly be said of how a kernel ended."""
    if returncode == -signal.SIGKILL and None not in (oom_before, oom_after):
        if oom_after > oom_before:  # type: ignore[operator]
            limit = f" (memory cap {cap})" if cap else ""
            return f"kernel died: out of memory, the OOM killer ended it{limit}"
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"kernel died: killed by {name}"
    if returncode:
        return f"kernel died: exit status {returncode}"
    return "kernel died"


class CellNotices(LoggingConfigurable):
    """Watches every kernel of this server, adopted ones too, for runs that end and kernels that die."""

    grace = Float(
        1.5, config=True, help="Seconds an ended cell waits for the next queued cell of its run."
    )
    scan = Float(1.0, config=True, help="Seconds between two looks for new kernels.")

    def __init__(self, serverapp: Any, **kwargs: Any):
        super().__init__(parent=serverapp, **kwargs)
        self.serverapp = serverapp
        self.paths = Paths.from_env()
        self.watched: dict[str, Watch] = {}
        self._timer: PeriodicCallback | None = None
        self._tasks: set[asyncio.Future[None]] = set()

    def spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def start(self) -> None:
        self._timer = PeriodicCallback(self.look, self.scan * 1000)
        self._timer.start()
        self.look()

    def look(self) -> None:
        km = self.serverapp.kernel_manager
        current = set(km.list_kernel_ids())
        for kernel_id in set(self.watched) - current:
            self.forget(kernel_id)
        for kernel_id in current - set(self.watched):
            with contextlib.suppress(Exception):
                self.watch(kernel_id)
        for watch in self.watched.values():
            if watch.stream is None:  # restarted, perhaps on new ports
                with contextlib.suppress(Exception):
                    self.listen(watch)
            else:
                self.measure(watch, moved_only=True)

    def watch(self, kernel_id: str) -> None:
        km = self.serverapp.kernel_manager
        kernel = km.get_kernel(kernel_id)
        if not getattr(kernel, "ready", None) or not kernel.ready.done():
            return  # still starting: the next look watches it
        session = Session(config=kernel.session.config, key=kernel.session.key)
        watch = Watch(kernel_id, None, session, runs=Runs(self.grace), cells=not gated(kernel))
        self.listen(watch)
        for event in ("restart", "dead"):
            callback = self._died_callback(watch, event)
            km.add_restart_callback(kernel_id, callback, event)
            watch.callbacks.append((callback, event))
        self.watched[kernel_id] = watch

    def listen(self, watch: Watch) -> None:
        kernel = self.serverapp.kernel_manager.get_kernel(watch.kernel_id)
        if not kernel.ready.done() or not watch.cells:
            return
        pid = getattr(kernel.provisioner, "pid", None)
        if watch.dead_pid is not None and (pid == watch.dead_pid or not pid or not running(pid)):
            return  # not restarted yet: its new ports are not known before its new process runs
        watch.dead_pid = None
        stream = kernel.connect_iopub()
        stream.on_recv(lambda parts: self.heard(watch, parts))
        watch.stream = stream
        self.measure(watch)
        self.log.info("labshare notices: watching the cells of kernel %s", watch.kernel_id)

    def measure(self, watch: Watch, moved_only: bool = False) -> None:
        """Where the kernel's memory is counted, and how many OOM kills were counted there so far;
        with `moved_only`, only when the kernel is now counted somewhere else (moved into a cap)."""
        with contextlib.suppress(Exception):
            pid = self.serverapp.kernel_manager.get_kernel(watch.kernel_id).provisioner.pid
            where = memory_cgroup(pid) if pid else None
            if moved_only and (where is None or where == watch.cgroup):
                return
            watch.cgroup = where
            watch.oom_kills = oom_kills(where)

    def mute(self, watch: Watch) -> None:
        if watch.stream is not None:
            with contextlib.suppress(Exception):
                watch.stream.close()
        watch.stream = None

    def forget(self, kernel_id: str) -> None:
        watch = self.watched.pop(kernel_id, None)
        if watch is None:
            return
        if watch.timer:
            watch.timer.cancel()
        self.mute(watch)

    def heard(self, watch: Watch, parts: list[Any]) -> None:
        heard = hear(watch.session, parts)
        if heard is None:
            return
        if heard.kind == "execute_input":
            if watch.timer:
                watch.timer.cancel()
                watch.timer = None
            # Not a new count of OOM kills: on a busy server this message may be read only after the
            # cell's allocation was killed already, and that kill would count as the baseline.
            self.measure(watch, moved_only=True)
        elif heard.kind == "status" and heard.content.get("execution_state") == "idle":
            self.measure(watch)  # idle: nothing of this kernel's is being killed now
        if watch.runs.heard(heard.kind, heard.request, heard.content, time.time()):
            loop = asyncio.get_event_loop()
            watch.timer = loop.call_later(watch.runs.grace, self._ended, watch)

    def _ended(self, watch: Watch) -> None:
        watch.timer = None
        event = watch.runs.finish(time.time(), "")
        if event is not None:
            self.spawn(self.tell(watch.kernel_id, event.kind, event.what, event.seconds))

    def _died_callback(self, watch: Watch, event: str) -> Any:
        def died() -> None:
            km = self.serverapp.kernel_manager
            code = None
            with contextlib.suppress(Exception):
                provisioner = km.get_kernel(watch.kernel_id).provisioner
                watch.dead_pid = provisioner.pid
                process = provisioner.process
                code = process.poll() if process is not None else None
            after = oom_kills(watch.cgroup)
            what = death(code, watch.oom_kills, after, memory_cap(watch.cgroup))
            self.log.info(
                "labshare notices: kernel %s ended with %s; OOM kills in %s: %s, then %s",
                watch.kernel_id,
                code,
                watch.cgroup,
                watch.oom_kills,
                after,
            )
            if watch.timer:
                watch.timer.cancel()
                watch.timer = None
            watch.runs.run = None
            what += "; Jupyter restarted it" if event == "restart" else "; Jupyter gave up on it"
            self.spawn(self.tell(watch.kernel_id, "kernel_died", what, None))
            self.mute(watch)  # the next look listens to the new kernel, perhaps on new ports

        return died

    async def tell(
        self,
        kernel_id: str,
        kind: str,
        what: str,
        seconds: float | None,
        notebook: str | None = None,
    ) -> None:
        subject = notebook or await self.notebook(kernel_id)
        event = events.Event(kind, what, subject, seconds)
        loop = asyncio.get_event_loop()
        await loop.run_in_executor(
            None, lambda: events.emit(self.paths, event, say=self.log.warning)
        )

    async def notebook(self, kernel_id: str) -> str:
        return await notebook_of(self.serverapp, kernel_id) or f"a console (kernel {kernel_id[:8]})"


def tell_later(
    serverapp: Any, kernel_id: str, kind: str, what: str, notebook: str | None = None
) -> None:
    """A notice from another part of this server (the GPU reclaim), its notebook looked up here."""
    notices = serverapp.web_app.settings.get("labshare_cell_notices")
    if notices is not None:
        notices.spawn(notices.tell(kernel_id, kind, what, None, notebook))


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "labshare.jupyterside.cell_notices"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    serverapp.web_app.settings["labshare_cell_notices"] = CellNotices(serverapp)


async def _start_jupyter_server_extension(serverapp: Any) -> None:
    notices = serverapp.web_app.settings.get("labshare_cell_notices")
    if notices is not None:
        notices.start()
