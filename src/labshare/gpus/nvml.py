"""GPUs as NVML sees them, behind one small interface.

A `GpuReader` is any function that returns the devices it sees, or raises
`NoGpu` saying why it sees none.  `read_nvml` is the real one
(nvidia-ml-py, the `labshare[gpu]` extra); tests pass a plain function
that returns `GpuDevice`s naming the pids of real kernels, the way httpx
tests pass a function to `MockTransport`.  Nothing else in labshare calls
NVML (`doctor` asks `read_driver`, reclaiming asks `read_process_use`), so
the driver's quirks stay in this file.  It lives in `gpus/`, the lowest floor
that needs it, so the kernel provisioner in `server/` can read the cards too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class GpuDevice:
    """One GPU: what it is, how busy it is, and which pids hold how much of its memory."""

    index: int
    name: str
    utilization_percent: int | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    # pid -> bytes of GPU memory; None where the driver does not say (e.g. some vGPU/MIG setups).
    processes: Mapping[int, int | None] = field(default_factory=dict)
    uuid: str | None = (
        None  # GPU-… or MIG-…: what a process is told, since CUDA and NVML number cards apart
    )
    pci_bus_id: str | None = (
        None  # e.g. 00000000:1B:00.0, the order CUDA_DEVICE_ORDER=PCI_BUS_ID follows
    )


class NoGpu(Exception):
    """No GPU figures here; the message says why in words a member understands, `cause` in NVML's."""

    def __init__(self, message: str, cause: str | None = None):
        super().__init__(message)
        self.cause = cause or message


class NoNvml(NoGpu):
    """nvidia-ml-py is not installed, so NVML cannot even be asked."""


GpuReader = Callable[[], list[GpuDevice]]


@dataclass(frozen=True)
class GpuReading:
    """What one read gave: the devices, or the reason there are none."""

    devices: list[GpuDevice]
    unavailable: str | None = None

    def memory_by_pid(self) -> dict[int, int]:
        """GPU bytes each pid holds, summed over all devices (unknown amounts count as 0)."""
        used: dict[int, int] = {}
        for device in self.devices:
            for pid, amount in device.processes.items():
                used[pid] = used.get(pid, 0) + (amount or 0)
        return used

    def devices_by_pid(self) -> dict[int, list[int]]:
        found: dict[int, list[int]] = {}
        for device in self.devices:
            for pid in device.processes:
                found.setdefault(pid, []).append(device.index)
        return found


def read(reader: GpuReader) -> GpuReading:
    """Call `reader`, turning "no GPU here" into a reading that says so instead of an error."""
    try:
        return GpuReading(devices=list(reader()))
    except NoGpu as exc:
        return GpuReading(devices=[], unavailable=str(exc))


def no_gpu(reason: str = "no GPU") -> GpuReader:
    """A reader for a host without GPUs, or for commands told not to look."""

    def reader() -> list[GpuDevice]:
        raise NoGpu(reason)

    return reader


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


NO_DRIVER = "no GPU: no NVIDIA driver on this host"


def driver_present() -> bool:
    """Whether this host has an NVIDIA driver, asked without NVML (which may be what is missing)."""
    return os.path.exists("/proc/driver/nvidia/version") or bool(shutil.which("nvidia-smi"))


@contextlib.contextmanager
def _nvml() -> Iterator[Any]:
    """pynvml, initialised for the block; every way NVML can fail becomes a `NoGpu` saying why."""
    try:
        import pynvml  # from nvidia-ml-py, the `gpu` extra
    except ImportError:
        from labshare.install_hint import reinstall_hint

        if not driver_present():  # nothing to read: no part to install
            raise NoGpu(NO_DRIVER) from None
        raise NoNvml(
            f"n/a: nvidia-ml-py is not installed (to add it, {reinstall_hint('gpu')})"
        ) from None
    try:
        pynvml.nvmlInit()
    except (pynvml.NVMLError, OSError) as exc:
        if getattr(exc, "value", None) == getattr(pynvml, "NVML_ERROR_LIBRARY_NOT_FOUND", 12):
            raise NoGpu(NO_DRIVER, cause=str(exc)) from None  # libnvidia-ml comes with the driver
        raise NoGpu(f"no GPU: the NVIDIA driver does not answer ({exc})", cause=str(exc)) from None
    try:
        yield pynvml
    except pynvml.NVMLError as exc:
        raise NoGpu(f"n/a: NVML failed while reading the GPUs ({exc})", cause=str(exc)) from None
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()


def _devices(nv: Any) -> list[GpuDevice]:
    return [
        _device(nv, index, nv.nvmlDeviceGetHandleByIndex(index))
        for index in range(nv.nvmlDeviceGetCount())
    ]


def read_nvml() -> list[GpuDevice]:
    """Every GPU NVML sees, with per-process memory; `NoGpu` without the library or the driver.

    NVML reports pids as the host sees them; inside a container with its own
    pid namespace they do not match, and kernels then show no GPU memory.
    """
    with _nvml() as nv:
        return _devices(nv)


def read_driver() -> tuple[str, list[GpuDevice]]:
    """The driver's version and the GPUs, for `labshare doctor`; fails as `read_nvml` does."""
    with _nvml() as nv:
        return _text(nv.nvmlSystemGetDriverVersion()), _devices(nv)


def _device(nv: Any, index: int, handle: object) -> GpuDevice:
    util: int | None = None
    try:
        util = int(nv.nvmlDeviceGetUtilizationRates(handle).gpu)
    except nv.NVMLError:  # not supported on every board or MIG slice
        pass
    memory = nv.nvmlDeviceGetMemoryInfo(handle)
    return GpuDevice(
        index=index,
        name=_text(nv.nvmlDeviceGetName(handle)),
        utilization_percent=util,
        memory_used_bytes=int(memory.used),
        memory_total_bytes=int(memory.total),
        processes=_processes(nv, handle),
        uuid=_text(nv.nvmlDeviceGetUUID(handle)),
        pci_bus_id=_text(nv.nvmlDeviceGetPciInfo(handle).busId),
    )


def _processes(nv: Any, handle: object) -> dict[int, int | None]:
    processes: dict[int, int | None] = {}
    for getter in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
        try:
            running = getattr(nv, getter)(handle)
        except nv.NVMLError:
            continue
        for proc in running:
            if int(proc.pid) in processes:  # a pid doing compute and graphics is listed twice
                continue
            used = proc.usedGpuMemory
            processes[int(proc.pid)] = None if used is None else int(used)
    return processes


@dataclass(frozen=True)
class ProcessUse:
    """One of NVML's samples of how much of a card one process used: what says a kernel is idle."""

    pid: int
    card: str  # the card's UUID
    at: float  # when the driver took the sample, seconds since the epoch
    sm_percent: int
    memory_percent: int


@dataclass(frozen=True)
class UseReading:
    """Every sample since a moment, and the cards whose driver keeps none (those cannot look idle)."""

    samples: list[ProcessUse]
    unknown: frozenset[str] = frozenset()  # UUIDs of cards without per-process samples

    def peak_by_pid(self) -> dict[int, int]:
        """The most of any card's compute each pid used in a sample; pids without samples are absent."""
        peak: dict[int, int] = {}
        for sample in self.samples:
            peak[sample.pid] = max(peak.get(sample.pid, 0), sample.sm_percent)
        return peak


def read_process_use(since: float) -> UseReading:
    """What each process used of each card after `since` (seconds since the epoch); fails as `read_nvml` does.

    NVML keeps a short ring of samples per card; a process absent from them
    did no work since `since` (the driver's "Not Found" means no process did).
    """
    with _nvml() as nv:
        samples: list[ProcessUse] = []
        unknown: set[str] = set()
        for index in range(nv.nvmlDeviceGetCount()):
            handle = nv.nvmlDeviceGetHandleByIndex(index)
            uuid = _text(nv.nvmlDeviceGetUUID(handle))
            try:
                found = nv.nvmlDeviceGetProcessUtilization(handle, int(since * 1_000_000))
            except nv.NVMLError as exc:
                if exc.value not in (nv.NVML_ERROR_NOT_FOUND, nv.NVML_SUCCESS):
                    unknown.add(uuid)  # e.g. Not Supported: this card cannot say a process is idle
                continue
            samples += [
                ProcessUse(
                    pid=int(s.pid),
                    card=uuid,
                    at=int(s.timeStamp) / 1_000_000,
                    sm_percent=int(s.smUtil),
                    memory_percent=int(s.memUtil),
                )
                for s in found
            ]
        return UseReading(samples=samples, unknown=frozenset(unknown))
