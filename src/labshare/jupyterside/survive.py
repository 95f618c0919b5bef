"""Kernels that outlive their Jupyter server and are re-adopted under the same id.

What it needs of jupyter_server's and jupyter_client's private parts it
takes from `internals`, which names each with the versions it was tested
against (the tests fail naming a name an upgrade removes, and `versions`
names an untested version at start).  It runs inside the Jupyter process,
configured by `records.jupyter_args`:

- `LabshareProvisioner` starts kernels *independent* of the server (own
  session, no `JPY_PARENT_PID`), so a crash or SIGKILL of the server leaves
  them running, and writes one record per kernel (connection info with its
  HMAC key, pid and start time, cwd) as a 0600 file in the member's 0700
  state directory.  It can signal, poll and wait for a kernel it did not
  spawn, which the stock provisioner cannot.  With `[gpus] assign =
  "per-kernel"` it leases the kernel's cards before the process exists
  (`gpus.kernels`) and refuses to start a kernel that gets none; it starts
  the kernel command behind the spec's GPU gate itself (`gpus.gate`), so a
  kernel of the Lab holds one lease, never two.
- `LabshareKernelManager` re-registers those kernels when the next server
  starts, before it serves any request, so the sessions database (kept in
  a file) still maps each notebook to its kernel.  Records of kernels that
  died meanwhile are dropped with their connection files, and their
  sessions go with them.  It asks every kernel it starts or adopts for
  `kernel_info` once, so Jupyter learns the state even of a kernel no
  client ever connects to.  On shutdown it shuts kernels down as usual unless
  `labshare restart` / `stop --keep-kernels` left a keep marker.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import queue
import signal
from pathlib import Path
from typing import Any, cast

from jupyter_client.launcher import launch_kernel
from jupyter_client.provisioning import LocalProvisioner
from jupyter_client.session import new_id
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado import web
from traitlets import Unicode

from labshare.config.project import project_gpus
from labshare.errors import LabshareError
from labshare.files import ensure_private_dir, remove
from labshare.gpus import kernels as gpu_leases
from labshare.gpus.assign import GpuPolicy
from labshare.gpus.gate import unwrap
from labshare.jupyterside import internals
from labshare.records.server import KernelRecord
from labshare.server.records import drop, read_records, record_path, running, write_record
from labshare.server.state import alive as _alive
from labshare.server.state import process_started

GPU_POLICY_HELP = "The member's GPU policy as JSON (gpus.assign.GpuPolicy), from `labshare start`."
PROBE_POLL = 1.0  # seconds between looks at whether a kernel yet to answer `kernel_info` runs


class Refused(web.HTTPError):
    """A kernel labshare will not start; Lab's dialog and the REST API's 500 show the sentence as it is."""

    def __init__(self, sentence: str):
        super().__init__(500, sentence)

    def __str__(self) -> str:
        return str(self.log_message)


class LabshareProvisioner(LocalProvisioner):
    """A local provisioner whose kernels survive the server and can be managed by the next one."""

    records_dir = Unicode(
        "", config=True, help="Where kernel records live (the member's private state dir)."
    )
    gpu_policy = Unicode("", config=True, help=GPU_POLICY_HELP)

    adopted_pid: int | None = None
    adopted_started: float | None = None

    @property
    def has_process(self) -> bool:
        return self.process is not None or self.adopted_pid is not None

    @property
    def gpus(self) -> GpuPolicy:
        return GpuPolicy.from_json(self.gpu_policy)

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
        kwargs = internals.launch_kwargs(kwargs)
        kwargs["independent"] = True
        gpus = self.gpus
        try:
            wanted = (
                self._project_gpus()
            )  # read even without leasing: a typo in it refuses the kernel
            held, env = gpu_leases.start(gpus, self.kernel_id, wanted if gpus.leased else None)
        except LabshareError as exc:
            raise self._refused(exc) from None
        kwargs["env"] = {**(kwargs.get("env") or os.environ), **env}
        try:
            self.process = launch_kernel(
                unwrap(cmd), **kwargs
            )  # leased here: the spec's gate would lease again
        except BaseException:
            gpu_leases.release(gpus, self.kernel_id)
            raise
        try:
            gpu_leases.hand_over(gpus, held, self.process.pid)
        except LabshareError as exc:
            self.process.kill()
            self.process.wait()
            self.process = None
            raise self._refused(exc) from None
        self.pid = self.process.pid
        self.pgid = os.getpgid(self.pid)
        self.cwd = kwargs.get("cwd") or os.getcwd()
        self.adopted_pid = self.adopted_started = None
        self.save(survived=0)
        return self.connection_info

    def save(self, survived: int) -> None:
        if not self.records_dir or self.pid is None:
            return
        km = self.parent
        info = dict(self.connection_info)
        key = info.get("key")
        if isinstance(key, bytes):
            info["key"] = key.decode()
        write_record(
            self.records_dir,
            KernelRecord(
                kernel_id=self.kernel_id,
                kernel_name=getattr(km, "kernel_name", ""),
                connection_file=getattr(km, "connection_file", ""),
                connection_info=info,
                pid=self.pid,
                pgid=self.pgid,
                started=process_started(self.pid) if self.pid else None,
                cwd=str(self.cwd),
                owner_pid=os.getpid(),
                owner_started=process_started(os.getpid()),
                survived=survived,
            ),
        )

    def adopt(self, record: KernelRecord) -> None:
        self.pid = self.adopted_pid = record.pid
        self.pgid = record.pgid
        self.adopted_started = record.started
        self.cwd = record.cwd
        self.connection_info = cast(
            Any, dict(record.connection_info)
        )  # Jupyter's TypedDict, read from JSON

    async def poll(self) -> int | None:
        if self.process is not None:
            return await super().poll()
        if self.adopted_pid is not None and _alive(self.adopted_pid, self.adopted_started):
            return None
        return 0

    async def wait(self) -> int | None:
        if self.process is not None:
            return await super().wait()
        while await self.poll() is None:
            await asyncio.sleep(0.1)
        self.adopted_pid = None
        return 0

    async def send_signal(self, signum: int) -> None:
        if self.process is not None:
            return await super().send_signal(signum)
        if (
            self.adopted_pid is None
            or self.pgid is None
            or not _alive(self.adopted_pid, self.adopted_started)
        ):
            return
        try:
            os.killpg(self.pgid, signum)
        except OSError:
            os.kill(self.adopted_pid, signum)

    async def kill(self, restart: bool = False) -> None:
        if self.process is not None:
            return await super().kill(restart)
        with contextlib.suppress(OSError):
            await self.send_signal(signal.SIGKILL)

    async def terminate(self, restart: bool = False) -> None:
        if self.process is not None:
            return await super().terminate(restart)
        with contextlib.suppress(OSError):
            await self.send_signal(signal.SIGTERM)

    def _refused(self, exc: LabshareError) -> Refused:
        """The error for a kernel that will not start, its connection file (with its key) removed."""
        if self.parent is not None:
            with contextlib.suppress(OSError, AttributeError):
                self.parent.cleanup_connection_file()
        return Refused(str(exc))

    def _project_gpus(self) -> int | None:
        """`[tool.labshare] gpus` of the project whose kernelspec this is (labshare's specs name it)."""
        meta = getattr(self.kernel_spec, "metadata", None) or {}
        project = (meta.get("labshare") or {}).get("project")
        return project_gpus(Path(project)) if project else None

    async def cleanup(self, restart: bool = False) -> None:
        await super().cleanup(restart)
        if restart:
            gpu_leases.keep_for_restart(self.gpus, self.kernel_id)
            return
        gpu_leases.release(self.gpus, self.kernel_id)
        if self.records_dir:
            remove(record_path(self.records_dir, self.kernel_id))


class LabshareKernelManager(internals.KernelManagerHooks, AsyncMappingKernelManager):  # type: ignore[misc]
    """Adopts the member's surviving kernels at start-up; keeps them on a restart."""

    records_dir = Unicode(
        "", config=True, help="Where kernel records live (the member's private state dir)."
    )
    keep_marker = Unicode(
        "", config=True, help="A file that, while present, keeps kernels running at shutdown."
    )
    gpu_policy = Unicode("", config=True, help=GPU_POLICY_HELP)

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._adopted: list[str] = []
        self._probes: set[asyncio.Future[None]] = set()
        if self.records_dir:
            ensure_private_dir(Path(self.records_dir))
            if self.keep_marker:
                remove(Path(self.keep_marker))
            self._adopt_all()

    def _adopt_all(self) -> None:
        """Register every surviving kernel synchronously, before the server answers any request."""
        lock = os.open(Path(self.records_dir) / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            for record in read_records(self.records_dir):
                if (
                    _alive(record.owner_pid, record.owner_started)
                    and record.owner_pid != os.getpid()
                ):
                    continue  # another live server holds it
                if not running(record):
                    self.log.info(
                        "Kernel %s died while no server was up; dropping it", record.kernel_id
                    )
                    drop(self.records_dir, record)
                    gpu_leases.release(GpuPolicy.from_json(self.gpu_policy), record.kernel_id)
                    continue
                try:
                    self._adopt(record)
                except Exception:
                    self.log.exception("Could not adopt kernel %s", record.kernel_id)
        finally:
            os.close(lock)
        if self._adopted:
            from tornado.ioloop import IOLoop

            IOLoop.current().add_callback(self._watch_adopted)

    def _adopt(self, record: KernelRecord) -> None:
        from jupyter_client.provisioning import KernelProvisionerFactory as KPF

        kernel_id = record.kernel_id
        km = self.kernel_manager_factory(
            connection_file=record.connection_file
            or os.path.join(self.connection_dir, f"kernel-{kernel_id}.json"),
            parent=self,
            log=self.log,
            kernel_name=record.kernel_name,
            kernel_spec_manager=self.kernel_spec_manager,
        )
        info = dict(record.connection_info)
        km.load_connection_info(info)
        km.kernel_id = kernel_id
        km.provisioner = KPF.instance(parent=self.parent).create_provisioner_instance(
            kernel_id, km.kernel_spec, parent=km
        )
        if not isinstance(km.provisioner, LabshareProvisioner):
            raise RuntimeError(f"kernel {kernel_id} has a provisioner labshare cannot adopt")
        km.provisioner.adopt(record)
        internals.mark_running(km, record.cwd)
        km.ready.set_result(None)
        km.execution_state = "busy"  # unknown until the kernel answers; never culled meanwhile
        km.reason = ""
        km.labshare_survived = record.survived + 1
        km.provisioner.save(survived=km.labshare_survived)
        internals.register(self, kernel_id, km)
        self._adopted.append(kernel_id)
        self.log.info(
            "Adopted kernel %s (pid %s), surviving server restart %d",
            kernel_id,
            record.pid,
            km.labshare_survived,
        )

    async def _watch_adopted(self) -> None:
        """Watch adopted kernels like fresh ones, and find out which of them are busy."""
        for kernel_id in self._adopted:
            if kernel_id not in self:
                continue
            self.start_watching_activity(kernel_id)
            self.get_kernel(kernel_id).start_restarter()
            internals.drop_when_dead(self, kernel_id)
        internals.start_culler(self)

    def start_watching_activity(self, kernel_id: str) -> None:
        """Watch the kernel's iopub as Jupyter does, and ask it for `kernel_info` to learn its state.

        jupyter_server (tested against 2.21) marks a fresh kernel "starting"
        and moves it on only at a status message on iopub, which a kernel
        sends only when asked something: a kernel started through the REST API
        that no client ever connects to reads "starting" for ever, so neither
        the GPU reclaim (which judges idle kernels) nor `ps` / `gpus` would
        see it as the idle kernel it is.  Jupyter calls this for every kernel
        it starts, and `_watch_adopted` for every kernel adopted.
        """
        super().start_watching_activity(kernel_id)
        probe = asyncio.ensure_future(self._probe(self.get_kernel(kernel_id)))
        self._probes.add(probe)
        probe.add_done_callback(self._probes.discard)

    async def _probe(self, km: Any) -> None:
        """Learn the kernel's state from its `kernel_info` reply, which it gives only between runs.

        Until it answers, the state stays what it was when asked: "starting",
        or "busy" for an adopted kernel, so that one is never culled
        meanwhile.  A state Jupyter learns from iopub in the meantime (a
        client's run) is the truth and ends the wait; so does the kernel's end.
        """
        unknown = km.execution_state
        session = km.session.clone()
        # A shell identity of its own: every `km.client()` shares km's, and the kernel, which routes
        # replies by identity, refuses a second peer with one in use (server-side execution's client).
        session.session = new_id()
        client = km.client(session=session)
        client.start_channels(iopub=False, stdin=False, hb=False, control=False)
        try:
            msg_id = client.kernel_info()
            while km.kernel_id in self and km.execution_state == unknown:
                try:
                    reply = await client.get_shell_msg(timeout=PROBE_POLL)
                except queue.Empty:
                    continue
                if reply.get("parent_header", {}).get("msg_id") == msg_id:
                    if km.execution_state == unknown:
                        km.execution_state = "idle"
                        self.log.info("Kernel %s is idle", km.kernel_id)
                    break
        except Exception:
            self.log.exception("Could not ask kernel %s for its state", km.kernel_id)
        finally:
            client.stop_channels()

    def kernel_died(self, kernel_id: str) -> None:
        """A kernel that died for good (no restart) is only dropped from the map; give back its cards too."""
        gpu_leases.release(GpuPolicy.from_json(self.gpu_policy), kernel_id)

    def keeps_kernels(self) -> bool:
        """`labshare restart` and `stop --keep-kernels` leave the marker while the server shuts down."""
        return bool(self.keep_marker) and Path(self.keep_marker).exists()
