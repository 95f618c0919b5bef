"""Inside Jupyter: give back the cards of kernels that sit idle on them, after a warning.

A Jupyter server extension, enabled by `records.jupyter_args`; it does
anything only with `[gpus] assign = "per-kernel"` and `idle_reclaim_after`
set.  jupyter_server's culler ignores the GPU and JupyterHub's sees whole
servers, so a kernel left idle keeps tens of GiB for days.  Every `tick`
this sweep looks at this server's own leased kernels: one that Jupyter
says is idle (also one no client ever talked to: `survive` asks every
kernel for `kernel_info` once), whose processes hold memory on its cards
but (by NVML's per-process samples) have used none of them since it went
idle, for
`idle_reclaim_after`, is first warned `reclaim_warning` ahead (the server
log, `gpu-reclaim.json` that `labshare gpus` reads, and
`GET /api/labshare/gpu-notices`, which labshare's Lab plugin shows as a
notification in the member's open tabs), then its notebook
is saved with its outputs and Jupyter shuts it down as a cull would; the
provisioner's clean-up frees the lease.  Any run, or any use of the card,
starts the clock again; a card whose driver keeps no per-process samples
never looks idle.  Only kernels of this server are touched, by Jupyter's
own shutdown: never a signal to a process labshare did not start.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.ioloop import PeriodicCallback
from traitlets import Float, Unicode
from traitlets.config import LoggingConfigurable

from labshare.gpus import history, leases
from labshare.gpus.assign import GpuPolicy
from labshare.gpus.nvml import NoGpu, read_nvml, read_process_use
from labshare.jupyterside import cell_notices
from labshare.jupyterside.sessions import notebook_of
from labshare.proc import family
from labshare.render.monitor import duration, size


@dataclass
class Idle:
    """A leased kernel Jupyter says is idle, and what it holds."""

    kernel_id: str
    since: float  # when it went idle, or last used its cards since, whichever is later
    cards: list[str]
    pids: set[int]
    memory: int = 0
    labels: list[str] | None = (
        None  # "GPU 0", by NVML index, for people; the cards' UUIDs where unknown
    )


class GpuReclaimer(LoggingConfigurable):
    """The periodic sweep that warns about, then shuts down, kernels idle on their GPUs."""

    state_dir = Unicode(
        "", config=True, help="The member's private state dir, for the history and warnings."
    )
    tick = Float(2.0, config=True, help="Seconds between two sweeps.")

    def __init__(self, serverapp: Any, **kwargs: Any):
        super().__init__(parent=serverapp, **kwargs)
        self.serverapp = serverapp
        self.policy = GpuPolicy.from_json(getattr(serverapp.kernel_manager, "gpu_policy", ""))
        self._used: dict[str, float] = {}  # kernel id -> the last sample in which it used its cards
        self._notices: dict[str, history.Notice] = {}
        self._messages: dict[str, str] = {}  # kernel id -> what its warning says, for Lab
        self._timer: PeriodicCallback | None = None

    @property
    def active(self) -> bool:
        return self.policy.leased and bool(self.policy.idle_reclaim_after) and bool(self.state_dir)

    def start(self) -> None:
        """Sweep every `tick`; tornado skips a sweep while the last one runs and logs one that fails."""
        self._timer = PeriodicCallback(self.sweep, self.tick * 1000)
        self._timer.start()

    async def sweep(self) -> None:
        now = time.time()
        idle = self._idle()
        try:
            self._measure(idle)
        except NoGpu as exc:  # without figures nothing can look unused
            self.log.debug("labshare: GPU reclaim cannot read the cards: %s", exc)
            idle = []
        after = float(self.policy.idle_reclaim_after or 0)
        warning = float(self.policy.reclaim_warning or 0)
        due = {k.kernel_id: k for k in idle if k.memory > 0 and now >= k.since + after - warning}
        for kernel_id in set(self._notices) - set(due):
            self._withdraw(kernel_id)
        for kernel_id, kernel in due.items():
            notice = self._notices.get(kernel_id)
            if notice is None:
                self._warn(kernel, max(kernel.since + after, now + warning))
            elif now >= notice.at:
                await self._reclaim(kernel, now)
        self._used = {k: v for k, v in self._used.items() if k in self.serverapp.kernel_manager}

    def _idle(self) -> list[Idle]:
        """This server's kernels that hold leases and that Jupyter says are idle."""
        km, uid = self.serverapp.kernel_manager, os.geteuid()
        held: dict[str, list[str]] = {}
        for lease in leases.leases(Path(self.policy.leases_dir)):
            if lease.live and lease.uid == uid and lease.kernel_id and lease.kernel_id in km:
                held.setdefault(lease.kernel_id, []).append(lease.card)
        found = []
        for kernel_id, cards in held.items():
            kernel = km.get_kernel(kernel_id)
            pid = getattr(kernel.provisioner, "pid", None)
            if kernel.execution_state != "idle" or not pid:
                self._used.pop(kernel_id, None)
                continue
            since = max(kernel.last_activity.timestamp(), self._used.get(kernel_id, 0.0))
            found.append(Idle(kernel_id, since, cards, family(pid)))
        return found

    def _measure(self, idle: list[Idle]) -> None:
        """Move each kernel's clock to its last use of its cards; add up the memory its processes hold there."""
        if not idle:
            return
        use = read_process_use(min(k.since for k in idle))
        devices = read_nvml()
        for kernel in idle:
            if use.unknown & set(kernel.cards):
                kernel.memory = 0  # this card cannot say its kernel is idle: never reclaimed
                continue
            used = [
                s.at
                for s in use.samples
                if s.pid in kernel.pids
                and s.card in kernel.cards
                and s.sm_percent > 0
                and s.at > kernel.since
            ]
            if used:
                self._used[kernel.kernel_id] = kernel.since = max(used)
            kernel.memory = sum(
                amount or 0
                for d in devices
                if d.uuid in kernel.cards
                for pid, amount in d.processes.items()
                if pid in kernel.pids
            )
            kernel.labels = [
                f"GPU {d.index}" for d in devices if d.uuid in kernel.cards
            ] or kernel.cards

    def _warn(self, kernel: Idle, at: float) -> None:
        self._notices[kernel.kernel_id] = history.Notice(
            kernel_id=kernel.kernel_id, cards=tuple(kernel.cards), at=at
        )
        history.save_warnings(Path(self.state_dir), self._notices)
        idle_for = duration(int(time.time() - kernel.since))
        self.log.warning(
            "labshare: kernel %s holds %s on GPU %s but has used none of it for %s; it will be shut down "
            "(its notebook saved) at %s unless it runs something",
            kernel.kernel_id,
            size(kernel.memory),
            ", ".join(kernel.cards),
            idle_for,
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)),
        )
        self._messages[kernel.kernel_id] = (
            f"at {time.strftime('%H:%M', time.localtime(at))} to free {', '.join(kernel.labels or kernel.cards)} "
            f"(idle {idle_for}, holding {size(kernel.memory)}); run a cell to keep it."
        )
        cell_notices.tell_later(
            self.serverapp,
            kernel.kernel_id,
            "reclaim",
            f"GPU reclaim warning: its kernel will be shut down {self._messages[kernel.kernel_id]}",
        )

    async def notices(self) -> list[dict[str, Any]]:
        """The warnings not yet carried out, each with its notebook and one sentence short enough for a toast."""
        shown = []
        for kernel_id, notice in sorted(self._notices.items(), key=lambda item: item[1].at):
            notebook = await notebook_of(self.serverapp, kernel_id)
            when = self._messages[kernel_id]
            shown.append(
                {
                    "kernel_id": kernel_id,
                    "notebook": notebook,
                    "cards": notice.cards,
                    "at": notice.at,
                    "message": f"labshare will shut down the kernel of {notebook or 'a console'} {when}",
                }
            )
        return shown

    def _withdraw(self, kernel_id: str) -> None:
        self._notices.pop(kernel_id)
        self._messages.pop(kernel_id, None)
        history.save_warnings(Path(self.state_dir), self._notices)
        if kernel_id in self.serverapp.kernel_manager:
            self.log.info("labshare: kernel %s is in use again; it keeps its GPU", kernel_id)

    async def _reclaim(self, kernel: Idle, now: float) -> None:
        """Save the kernel's notebook, then shut the kernel down as Jupyter's culler would."""
        notebook = await notebook_of(self.serverapp, kernel.kernel_id)
        if notebook is not None and not await self._save(notebook):
            return  # the document is mid-update; the next sweep saves it
        km = self.serverapp.kernel_manager
        await km.shutdown_kernel(kernel.kernel_id)
        self._notices.pop(kernel.kernel_id, None)
        self._messages.pop(kernel.kernel_id, None)
        history.save_warnings(Path(self.state_dir), self._notices)
        history.record(
            Path(self.state_dir),
            history.Reclaimed(
                user=psutil.Process().username(),
                kernel_id=kernel.kernel_id,
                notebook=notebook,
                cards=tuple(kernel.cards),
                idle_seconds=int(now - kernel.since),
                memory_bytes=kernel.memory,
                at=now,
            ),
        )
        self.log.warning(
            "labshare: shut down kernel %s (%s), idle on GPU %s for %s; %s of GPU memory came back",
            kernel.kernel_id,
            notebook or "no notebook",
            ", ".join(kernel.cards),
            duration(int(now - kernel.since)),
            size(kernel.memory),
        )
        cell_notices.tell_later(
            self.serverapp,
            kernel.kernel_id,
            "reclaim",
            f"GPU reclaimed: notebook saved, kernel shut down after {duration(int(now - kernel.since))} "
            f"idle, {size(kernel.memory)} of GPU memory freed ({', '.join(kernel.labels or kernel.cards)})",
            notebook or "a console",
        )

    async def _save(self, path: str) -> bool:
        """Save the server's copy of the notebook, outputs and all, the way output keeping does; True when
        it is on disk (also when the server holds no copy: the file is then all there is)."""
        from labshare.jupyterside import internals

        keeper = self.serverapp.web_app.settings.get("labshare_output_keeper")
        app = keeper.ydoc_app() if keeper is not None else None
        if app is None:
            return True
        for room in list(app.ywebsocket_server.rooms.values()):
            if internals.is_document(room) and room.ready and internals.room_path(room) == path:
                task = internals.save(room)
                if task is None:
                    return False
                await task
        return True


class NoticesHandler(APIHandler):
    """`GET /api/labshare/gpu-notices`: what labshare's Lab plugin shows; the token (or Lab's cookie) is required."""

    def initialize(self, reclaimer: GpuReclaimer) -> None:
        self.reclaimer = reclaimer

    @web.authenticated
    async def get(self) -> None:
        reclaimer = self.reclaimer
        if not reclaimer.active:
            self.finish(
                {"notices": [], "every": None}
            )  # nothing here is ever reclaimed: Lab stops asking
            return
        every = min(30.0, max(reclaimer.tick, float(reclaimer.policy.reclaim_warning or 0) / 10))
        self.finish({"notices": await reclaimer.notices(), "every": every})


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    # The kernel's cards for Lab's status bar (jupyterside/gpu_status.py) come with this one extension.
    return [
        {"module": "labshare.jupyterside.reclaim"},
        {"module": "labshare.jupyterside.gpu_status"},
    ]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    reclaimer = serverapp.web_app.settings["labshare_gpu_reclaimer"] = GpuReclaimer(serverapp)
    pattern = url_path_join(serverapp.base_url, "/api/labshare/gpu-notices")
    serverapp.web_app.add_handlers(".*$", [(pattern, NoticesHandler, {"reclaimer": reclaimer})])


async def _start_jupyter_server_extension(serverapp: Any) -> None:
    reclaimer = serverapp.web_app.settings.get("labshare_gpu_reclaimer")
    if reclaimer is not None and reclaimer.active:
        reclaimer.start()
