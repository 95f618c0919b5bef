"""Inside Jupyter: `GET /api/labshare/kernels/<id>/gpus`, the current kernel's cards for Lab's status bar.

labshare's Lab plugin asks this every few seconds for the kernel of the
tab in front (`gpus/kernel_cards.py` makes the answer).  The server runs
as the member, and the answer covers only kernels of this very server,
behind Jupyter's own authentication and its `kernels` permission: any
other id, another member's kernel included, is 404, the same as Jupyter's
own `/api/kernels/<id>`.  Loaded as a second extension point of
`labshare.jupyterside.reclaim`, so one enabled extension serves both.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from pathlib import Path
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from labshare.gpus import kernel_cards, leases
from labshare.gpus.assign import GpuPolicy
from labshare.gpus.nvml import GpuReading, read, read_nvml
from labshare.proc import family


class Readings:
    """One NVML reading shared by every tab that asks within `fresh` seconds.

    A member may keep a dozen tabs open, each asking every few seconds;
    the driver is read at most once a `fresh`, in a thread, since a card
    without persistence mode can take a while to answer and Jupyter's
    event loop serves every tab meanwhile.
    """

    def __init__(self, fresh: float = 1.0):
        self.fresh = fresh
        self._at = -math.inf
        self._reading = GpuReading(devices=[])
        self._lock = asyncio.Lock()

    async def get(self) -> GpuReading:
        async with self._lock:
            if time.monotonic() - self._at >= self.fresh:
                self._reading = await asyncio.to_thread(read, read_nvml)
                self._at = time.monotonic()
            return self._reading


class KernelGpusHandler(APIHandler):
    """The kernel's cards; the token (or Lab's cookie) is required, and Jupyter's `kernels` read permission."""

    auth_resource = "kernels"

    def initialize(self, readings: Readings) -> None:
        self.readings = readings

    @web.authenticated
    @authorized
    async def get(self, kernel_id: str) -> None:
        km = self.kernel_manager
        if kernel_id not in km:
            raise web.HTTPError(404, f"No kernel {kernel_id} on this server.")
        reclaimer = self.settings.get("labshare_gpu_reclaimer")
        policy = (
            reclaimer.policy
            if reclaimer is not None
            else GpuPolicy.from_json(getattr(km, "gpu_policy", ""))
        )
        if not policy.leased:
            self.finish(kernel_cards.kernel_cards(kernel_id, leased=False).to_json())
            return
        uid = os.geteuid()
        held = [
            lease
            for lease in await asyncio.to_thread(leases.leases, Path(policy.leases_dir))
            if lease.live and lease.uid == uid and lease.kernel_id == kernel_id
        ]
        reading = await self.readings.get() if held else kernel_cards.NOTHING_READ
        pid = getattr(km.get_kernel(kernel_id).provisioner, "pid", None) or next(
            (lease.pid for lease in held if lease.pid), None
        )
        pids = await asyncio.to_thread(family, pid) if pid and held else set()
        self.finish(
            kernel_cards.kernel_cards(
                kernel_id,
                leased=True,
                held=held,
                reading=reading,
                pids=pids,
                reclaim_in=await _reclaim_in(reclaimer, kernel_id),
            ).to_json()
        )


async def _reclaim_in(reclaimer: Any, kernel_id: str) -> float | None:
    """Seconds until the reclaimer's warning for this kernel falls due; None while it is not warned."""
    if reclaimer is None or not reclaimer.active:
        return None
    for notice in await reclaimer.notices():
        if notice["kernel_id"] == kernel_id:
            return float(notice["at"]) - time.time()
    return None


def _load_jupyter_server_extension(serverapp: Any) -> None:
    pattern = url_path_join(serverapp.base_url, r"/api/labshare/kernels/(?P<kernel_id>[\w-]+)/gpus")
    serverapp.web_app.add_handlers(".*$", [(pattern, KernelGpusHandler, {"readings": Readings()})])
