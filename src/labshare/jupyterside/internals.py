"""The one module that touches private parts of Jupyter's packages, each with the versions it was tested against.

Kernel survival, output keeping and the GPU reclaim need a few things
jupyter_server, jupyter_client, jupyter-server-ydoc (jupyter-collaboration's
server half) and jupyter-server-nbmodel keep private, and those change
without notice.  So every such use is here, behind a name of labshare's own,
and is a row of `USES`: the distribution, the dotted name, the versions it
was tested against (as httpx keeps httpcore's exceptions in one map).
tests/test_jupyter_internals.py resolves every row against what is
installed and fails naming this module and the missing name; `start` and
`doctor` compare the installed versions with these ranges (`server/versions.py`).

Importing this module imports no Jupyter (the CLI reads `USES`); each
function imports what it touches, inside the Jupyter process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

KERNEL_SURVIVAL = "kernel survival"
OUTPUT_KEEPING = "output keeping"


@dataclass(frozen=True)
class Internal:
    """One private name labshare uses, and where."""

    package: str  # the distribution, as pip names it
    name: str  # the module, then the attributes down to the private one
    tested: str  # the versions the use was tested against, as a specifier
    part: str  # the labshare feature that needs it (KERNEL_SURVIVAL, OUTPUT_KEEPING)
    on_instances: bool = False  # set in the class's own code, so only its instances have it


_CLIENT, _SERVER = ">=8.10,<9", ">=2.21,<3"
_YDOC, _NBMODEL = ">=3.0.4,<4", ">=0.2.9,<0.3"
_KM = "jupyter_client.manager.KernelManager"
_MKM = "jupyter_client.multikernelmanager.MultiKernelManager"
_MAPPING = "jupyter_server.services.kernels.kernelmanager.MappingKernelManager"
_ROOM = "jupyter_server_ydoc.rooms.DocumentRoom"
_YDOC_APP = "jupyter_server_ydoc.app.YDocExtension"
_YDOC_WS = "jupyter_server_ydoc.handlers.YDocWebSocketHandler"
_STACK = "jupyter_server_nbmodel.execution_stack.ExecutionStack"

USES: tuple[Internal, ...] = (
    Internal(
        "jupyter-client",
        "jupyter_client.provisioning.LocalProvisioner._scrub_kwargs",
        _CLIENT,
        KERNEL_SURVIVAL,
    ),
    Internal("jupyter-client", f"{_KM}._launch_args", _CLIENT, KERNEL_SURVIVAL),
    Internal(
        "jupyter-client", f"{_KM}._attempted_start", _CLIENT, KERNEL_SURVIVAL, on_instances=True
    ),
    Internal("jupyter-client", f"{_KM}._connection_file_written", _CLIENT, KERNEL_SURVIVAL),
    Internal("jupyter-client", f"{_KM}._close_control_socket", _CLIENT, KERNEL_SURVIVAL),
    Internal("jupyter-client", f"{_MKM}._kernels", _CLIENT, KERNEL_SURVIVAL),
    Internal("jupyter-client", f"{_MKM}._async_shutdown_all", _CLIENT, KERNEL_SURVIVAL),
    Internal("jupyter-client", f"{_MKM}._pending_kernels", _CLIENT, KERNEL_SURVIVAL),
    Internal("jupyter-server", "jupyter_server._tz.utcnow", _SERVER, KERNEL_SURVIVAL),
    Internal("jupyter-server", f"{_MAPPING}._kernel_connections", _SERVER, KERNEL_SURVIVAL),
    Internal("jupyter-server", f"{_MAPPING}._kernel_ports", _SERVER, KERNEL_SURVIVAL),
    Internal("jupyter-server", f"{_MAPPING}._initialized_culler", _SERVER, KERNEL_SURVIVAL),
    Internal("jupyter-server", f"{_MAPPING}._handle_kernel_died", _SERVER, KERNEL_SURVIVAL),
    Internal("jupyter-server-ydoc", f"{_ROOM}._save_to_disc", _YDOC, OUTPUT_KEEPING),
    Internal(
        "jupyter-server-ydoc", f"{_ROOM}._saving_document", _YDOC, OUTPUT_KEEPING, on_instances=True
    ),
    Internal("jupyter-server-ydoc", f"{_ROOM}._document", _YDOC, OUTPUT_KEEPING, on_instances=True),
    Internal("jupyter-server-ydoc", f"{_ROOM}._file", _YDOC, OUTPUT_KEEPING, on_instances=True),
    Internal("jupyter-server-ydoc", f"{_YDOC_APP}._room_locks", _YDOC, OUTPUT_KEEPING),
    Internal("jupyter-server-ydoc", f"{_YDOC_WS}.room", _YDOC, OUTPUT_KEEPING, on_instances=True),
    Internal(
        "jupyter-server-ydoc", f"{_YDOC_APP}.file_loaders", _YDOC, OUTPUT_KEEPING, on_instances=True
    ),
    Internal("jupyter-server-nbmodel", f"{_STACK}._get_local_client", _NBMODEL, OUTPUT_KEEPING),
    Internal("jupyter-server-nbmodel", f"{_STACK}._get_client", _NBMODEL, OUTPUT_KEEPING),
    # set by the stack on the kernel clients it makes for another process's kernel
    Internal(
        "jupyter-server-nbmodel",
        f"{_STACK}._server_nbmodel_remote",
        _NBMODEL,
        OUTPUT_KEEPING,
        on_instances=True,
    ),
)


# Kernel survival: jupyter_client's and jupyter_server's kernel managers.


def launch_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """What the stock provisioner passes on to `launch_kernel` of a kernel manager's launch arguments."""
    from jupyter_client.provisioning import LocalProvisioner

    return LocalProvisioner._scrub_kwargs(kwargs)


def mark_running(km: Any, cwd: str) -> None:
    """Make a kernel manager made for a kernel already running look as if it had started it."""
    from jupyter_server._tz import utcnow

    km._launch_args = {"cwd": cwd}
    km._attempted_start = True  # so a restart makes a fresh `ready` future
    km._connection_file_written = True
    km.last_activity = utcnow()


def register(mapping: Any, kernel_id: str, km: Any) -> None:
    """Put a kernel manager in a mapping kernel manager's tables, as its own start would."""
    mapping._kernels[kernel_id] = km
    mapping._kernel_connections[kernel_id] = 0
    mapping._kernel_ports[kernel_id] = km.ports


def drop_when_dead(mapping: Any, kernel_id: str) -> None:
    """Have Jupyter drop a kernel that dies for good, as it does for each kernel it starts itself."""
    mapping.add_restart_callback(kernel_id, lambda: mapping._handle_kernel_died(kernel_id), "dead")


def start_culler(mapping: Any) -> None:
    """Start idle culling unless it runs already (Jupyter starts it at its first kernel)."""
    if not mapping._initialized_culler:
        mapping.initialize_culler()


class KernelManagerHooks:
    """Two private hooks of jupyter_server's mapping kernel manager, under names of labshare's own.

    Mix in before `AsyncMappingKernelManager`.
    """

    log: Any
    _kernels: dict[str, Any]
    _pending_kernels: dict[str, Any]

    def kernel_died(self, kernel_id: str) -> None:
        """Called when a kernel died for good (no restart), before Jupyter drops it."""

    def keeps_kernels(self) -> bool:
        """Whether a shutdown of the server leaves its kernels running."""
        return False

    def _handle_kernel_died(self, kernel_id: str) -> None:
        self.kernel_died(kernel_id)
        super()._handle_kernel_died(kernel_id)  # type: ignore[misc]

    async def _async_shutdown_all(self, now: bool = False) -> None:
        if not self.keeps_kernels():
            self._forget_failed_starts()
            await super()._async_shutdown_all(now=now)  # type: ignore[misc]
            return
        self.log.info("Leaving %d kernel(s) running for the next server", len(self._kernels))
        for kernel_id, km in list(self._kernels.items()):
            with contextlib.suppress(Exception):
                self.stop_watching_activity(kernel_id)  # type: ignore[attr-defined]
                km.stop_restarter()
                km._close_control_socket()

    shutdown_all = _async_shutdown_all

    def _forget_failed_starts(self) -> None:
        """Drop each kernel whose start failed (a refused GPU lease, say) from jupyter_client's pending table.

        jupyter_client leaves it there, and jupyter_server's shutdown of it says
        "Kernel does not exist", which failed the whole /api/shutdown: the server
        ran on until `labshare stop` ended it after its 10 s grace.
        """
        for kernel_id, task in list(self._pending_kernels.items()):
            if task.done() and kernel_id not in self._kernels:
                del self._pending_kernels[kernel_id]


# A Lab server's start: a saving only, so not in USES; should the name go, only the saving goes.


def skip_yarn_config() -> None:
    """Spare each Lab start the `node yarn.js config` it runs to learn an npm registry: 0.4 s of CPU.

    The registry serves building Lab and installing extensions, which
    labshare's Lab never does (`--LabApp.extension_manager=readonly`), yet
    every start on a server with Node.js on the PATH ran it.
    """
    from jupyterlab import commands

    if hasattr(commands, "_yarn_config"):
        commands._yarn_config = _no_yarn_config


def _no_yarn_config(_logger: Any) -> dict[str, dict[str, str]]:
    return {"yarn config": {}, "npm config": {}}


# Output keeping: jupyter-server-ydoc's rooms.


def is_document(room: Any) -> bool:
    """Whether a collaboration room holds a document (a notebook or file), not awareness alone."""
    from jupyter_server_ydoc.rooms import DocumentRoom

    return isinstance(room, DocumentRoom)


def save(room: Any) -> Awaitable[None] | None:
    """Start saving the room's document now; None when it cannot be saved."""
    return room._save_to_disc()


def saving(room: Any) -> bool:
    task = room._saving_document
    return task is not None and not task.done()


def running_cell(room: Any) -> bool:
    """Whether a cell of the room's notebook runs, as server-side execution marks it."""
    cells = getattr(room._document, "ycells", None)
    if cells is None:
        return False
    return any(cell.get("execution_state") == "running" for cell in cells)


def room_path(room: Any) -> str | None:
    """The path of the room's file, relative to the server's root; None when it is gone."""
    try:
        return room._file.path
    except (RuntimeError, KeyError, OSError):
        return None


def room_lock(app: Any, rid: str) -> Any:
    """The lock jupyter-server-ydoc takes to create or delete the room `rid`."""
    return app._room_locks[rid]


def reconnect_late_joiners(app: Any, late: Callable[[str], None]) -> None:
    """Have a tab whose document was freed while it joined connect again, to the document loaded anew.

    jupyter-server-ydoc's websocket takes its room in `prepare` and joins the
    room's clients only in a task started after `open`; a room freed in
    between left the tab on a deleted room that never syncs (Lab: "The
    document is taking some time to load").  Closed with 1012 (service
    restart), Lab's provider reconnects at once and gets a fresh room.
    """
    server = app.ywebsocket_server
    serve = server.serve
    if getattr(serve, "labshare_wrapped", False):
        return

    async def guarded(websocket: Any) -> None:
        room = getattr(websocket, "room", None)
        if room is not None and server.rooms.get(websocket.path) is not room:
            late(websocket.path)
            websocket.close(1012, "the document was reloaded; connect again")
            return
        await serve(websocket)

    guarded.labshare_wrapped = True  # type: ignore[attr-defined]
    server.serve = guarded


async def forget_file(app: Any, file_id: str) -> None:
    """Drop the file loader of a freed document, unless another room still watches the file."""
    if file_id in app.file_loaders and app.file_loaders[file_id].number_of_subscriptions == 0:
        await app.file_loaders.remove(file_id)


# Output keeping: jupyter-server-nbmodel's kernel clients.


def wrap_execution_clients(
    made: Callable[[Any], None], handed: Callable[[Any], Awaitable[None]]
) -> bool:
    """Have server-side execution call `made(client)` on each kernel client it makes, and await
    `handed(client)` before it uses one of a kernel in this process; once, however often called.

    False when nbmodel is not there or no longer has the methods this wraps.
    """
    try:
        from jupyter_server_nbmodel.execution_stack import ExecutionStack
    except ImportError:
        return False
    make = getattr(ExecutionStack, "_get_local_client", None)
    get = getattr(ExecutionStack, "_get_client", None)
    if make is None or get is None:
        return False
    if getattr(get, "labshare_wrapped", False):
        return True

    def get_local_client(stack: Any, kernel_id: str) -> Any:
        client = make(stack, kernel_id)
        made(client)
        return client

    async def get_client(stack: Any, kernel_id: str) -> Any:
        client = await get(stack, kernel_id)
        if not getattr(client, "_server_nbmodel_remote", False):
            await handed(client)
        return client

    get_client.labshare_wrapped = True  # type: ignore[attr-defined]
    ExecutionStack._get_local_client = get_local_client
    ExecutionStack._get_client = get_client
    return True
