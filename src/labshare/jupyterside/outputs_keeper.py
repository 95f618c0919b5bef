"""Inside Jupyter: keep notebooks' outputs on disk promptly, and free memory only when it is safe.

A Jupyter server extension, enabled by `outputs.jupyter_args`.  With output
keeping on, jupyter-collaboration's own clean-up is off (it dropped a
document 60 s after the last tab closed, even while its kernel was still
printing into it), so this sweep does the freeing instead, on stricter
terms: no tab connected, the kernel idle, no cell running, every change
saved, and all of that for `free_after` seconds.  It also saves a changed
document at least every `save_every` seconds: the stock save waits for 1 s
of quiet, which a cell printing every second never gives.

With output keeping off it hides the collaboration and server-side
execution front-ends, whose server parts are then disabled, so Lab behaves
like stock JupyterLab.  `GET /api/labshare/outputs` (token required) says
which mode is active and how many documents are held.

It reaches into jupyter-collaboration's rooms, and has `execution_clients`
prepare jupyter-server-nbmodel's kernel clients, through `internals` (which
says which private names, tested with which versions); tests/test_outputs*.py
fail if an upgrade breaks either, and `versions` names an untested one at start.
Should one be installed anyway and lack a part the sweep uses, the sweep
switches itself off with one note in the server log (and says why in
`/api/labshare/outputs`) instead of failing again every second.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import time
from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web
from traitlets import Bool, Float
from traitlets.config import LoggingConfigurable

from labshare.jupyterside import internals
from labshare.jupyterside.execution_clients import prepare_execution_clients
from labshare.jupyterside.sessions import notebook_of

FRONTENDS = (
    "@jupyter/collaboration-extension",
    "@jupyter/docprovider-extension",
    "@datalayer/jupyter-server-nbmodel",
)
STOCK_PLUGINS = (
    "@jupyterlab/notebook-extension:cell-executor",
    "@jupyterlab/filebrowser-extension:defaultFileBrowser",
)


class OutputKeeper(LoggingConfigurable):
    """Periodic save and safe freeing of the server's shared documents."""

    keep = Bool(
        True, config=True, help="Whether cells run on the server side and keep their outputs."
    )
    save_every = Float(
        2.0,
        config=True,
        help="Longest time, in seconds, a change waits before it is saved, even mid-output.",
    )
    free_after = Float(
        60.0,
        config=True,
        help="Seconds a document must be unused (no tab, idle kernel, no running cell, saved) before it is freed.",
    )
    tick = Float(1.0, config=True, help="Seconds between two sweeps.")

    def __init__(self, serverapp: Any, **kwargs: Any):
        super().__init__(parent=serverapp, **kwargs)
        self.serverapp = serverapp
        self.freed = 0
        self._rooms: dict[str, tuple[Any, list[tuple[Any, Any]]]] = {}
        self._changed: dict[str, float] = {}
        self._used: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self.problem: str | None = None

    def ydoc_app(self) -> Any:
        apps = self.serverapp.extension_manager.extension_apps.get("jupyter_server_ydoc", set())
        return next(iter(apps), None)

    def documents(self) -> int:
        app = self.ydoc_app()
        if app is None:
            return 0
        return sum(
            1 for room in app.ywebsocket_server.rooms.values() if internals.is_document(room)
        )

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            try:
                await self.sweep()
            except (AttributeError, ImportError) as missing:
                self.switch_off(missing)
                return
            except Exception:  # a bad sweep must not end output keeping for the server's lifetime
                self.log.exception("labshare: output keeping sweep failed; trying again")

    def switch_off(self, missing: Exception) -> None:
        """Stop sweeping for good: a part of jupyter-collaboration the sweep needs is not there."""
        from labshare.install_hint import package_command
        from labshare.server.versions import installed, requirement

        have = installed(["jupyter-server-ydoc"])["jupyter-server-ydoc"]
        self.problem = (
            f"jupyter-server-ydoc {have} lacks a part labshare uses ({missing}), so outputs are saved only "
            "after a second of quiet and documents are never freed from memory; install a version labshare "
            f"is tested with: {package_command(requirement('jupyter-server-ydoc'))}"
        )
        self.log.warning("labshare: output keeping's sweep switched itself off: %s", self.problem)

    async def sweep(self) -> None:
        app = self.ydoc_app()
        if app is None:
            return
        internals.reconnect_late_joiners(app, self._late)
        now = time.monotonic()
        rooms = {
            rid: room
            for rid, room in list(app.ywebsocket_server.rooms.items())
            if internals.is_document(room)
        }
        for rid in list(self._rooms):
            if rooms.get(rid) is not self._rooms[rid][0]:
                self._forget(rid)
        busy = None
        freed = self.freed
        for rid, room in rooms.items():
            if rid not in self._rooms:
                self._watch(rid, room, now)
            if not room.ready:
                self._used[rid] = now
                continue
            changed = self._changed.get(rid)
            if changed is not None and now - changed >= self.save_every:
                self._changed.pop(rid, None)
                if internals.save(room) is None:
                    self._changed[rid] = changed
            if (
                room.clients
                or rid in self._changed
                or internals.saving(room)
                or internals.running_cell(room)
            ):
                self._used[rid] = now
                continue
            if busy is None:
                busy = await self._busy_paths()
            if internals.room_path(room) in busy:
                self._used[rid] = now
                continue
            if now - self._used.get(rid, now) >= self.free_after:
                await self._free(app, rid, room)
        if self.freed != freed:
            _return_memory()

    def _late(self, rid: str) -> None:
        self.log.info("labshare: a tab joined %s as it was freed; it connects again", rid)

    def _watch(self, rid: str, room: Any, now: float) -> None:
        def changed(_event: Any) -> None:
            self._changed.setdefault(rid, time.monotonic())

        subs = []
        for name, shared in room.ydoc.items():
            if name != "state":
                subs.append((shared, shared.observe_deep(changed)))
        self._rooms[rid] = (room, subs)
        self._used[rid] = now

    def _forget(self, rid: str) -> None:
        _, subs = self._rooms.pop(rid)
        for shared, sub in subs:
            with contextlib.suppress(Exception):
                shared.unobserve(sub)
        self._changed.pop(rid, None)
        self._used.pop(rid, None)

    async def _busy_paths(self) -> set[str]:
        """Paths whose session kernel is anything but idle or dead (busy, starting, restarting, unknown)."""
        busy = set()
        km = self.serverapp.kernel_manager
        for kernel_id in list(km.list_kernel_ids()):
            try:
                state = km.get_kernel(kernel_id).execution_state
            except KeyError:
                continue
            if state not in ("idle", "dead") and (
                path := await notebook_of(self.serverapp, kernel_id)
            ):
                busy.add(path)
        return busy

    async def _free(self, app: Any, rid: str, room: Any) -> None:
        async with internals.room_lock(app, rid):
            if room.clients or app.ywebsocket_server.rooms.get(rid) is not room:
                return
            self.log.info("labshare: freeing the unused, saved document %s from memory", rid)
            await app.ywebsocket_server.delete_room(room=room)
            # under the lock: a tab creating the room anew takes the file's loader as it is then
            await internals.forget_file(app, rid.split(":", 2)[-1])
        self._forget(rid)
        self.freed += 1


def _return_memory() -> None:
    """Hand freed documents' memory back to the system; glibc keeps freed heap pages otherwise."""
    gc.collect()
    libc = ctypes.util.find_library("c")
    if libc:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(libc).malloc_trim(0)


def _hide_frontends(
    handler: Any, page_config: dict[str, Any], chained: Any = None
) -> dict[str, Any]:
    """Lab without collaboration and server-side execution, with the stock executor and file browser back."""
    if chained is not None:
        page_config = chained(handler, page_config)
    disabled = [
        name for name in page_config.get("disabledExtensions", []) if name not in STOCK_PLUGINS
    ]
    page_config["disabledExtensions"] = disabled + [
        name for name in FRONTENDS if name not in disabled
    ]
    return page_config


class OutputsHandler(APIHandler):
    """Whether output keeping is active here, and how many documents the server holds."""

    keeper: OutputKeeper

    def initialize(self, keeper: OutputKeeper) -> None:
        self.keeper = keeper

    @web.authenticated
    async def get(self) -> None:
        keeper = self.keeper
        active = keeper.keep and keeper.ydoc_app() is not None
        self.finish(
            {
                "keep_outputs": active,
                "documents": keeper.documents(),
                "freed": keeper.freed,
                "save_every": keeper.save_every,
                "free_after": keeper.free_after,
                "problem": keeper.problem,
            }
        )


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "labshare.jupyterside.outputs_keeper"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    keeper = OutputKeeper(serverapp)
    serverapp.web_app.settings["labshare_output_keeper"] = keeper
    pattern = url_path_join(serverapp.base_url, "/api/labshare/outputs")
    serverapp.web_app.add_handlers(".*$", [(pattern, OutputsHandler, {"keeper": keeper})])
    if not keeper.keep:
        chained = serverapp.web_app.settings.get("page_config_hook")
        serverapp.web_app.settings["page_config_hook"] = lambda h, c: _hide_frontends(h, c, chained)
    elif keeper.ydoc_app() is None:
        serverapp.log.warning(
            "labshare: jupyter-collaboration is not loaded, so outputs are not kept"
        )
    elif not prepare_execution_clients():
        serverapp.log.warning(
            "labshare: jupyter-server-nbmodel changed, so the answer to input() in a kernel's "
            "first run may be lost on a busy server; report it to labshare"
        )


async def _start_jupyter_server_extension(serverapp: Any) -> None:
    keeper = serverapp.web_app.settings.get("labshare_output_keeper")
    if keeper is not None and keeper.keep:
        keeper.start()
