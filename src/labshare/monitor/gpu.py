"""GPUs as NVML sees them, behind one small interface.

A `GpuReader` is any function that returns the devices it sees, or raises
`NoGpu` saying why it sees none.  `read_nvml` is the real one
(nvidia-ml-py, the `labshare[gpu]` extra); tests pass a plain function
that returns `GpuDevice`s naming the pids of real kernels, the way httpx
tests pass a function to `MockTransport`.  Nothing else in labshare calls
NVML for monitoring, so the driver's quirks stay in this file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


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


class NoGpu(Exception):
    """No GPU figures here; the message says why in words a member understands."""


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


def read_nvml() -> list[GpuDevice]:
    """Every GPU NVML sees, with per-process memory; `NoGpu` without the library or the driver.

    NVML reports pids as the host sees them; inside a container with its own
    pid namespace they do not match, and kernels then show no GPU memory.
    """
    try:
        import pynvml  # from nvidia-ml-py, the `gpu` extra
    except ImportError:
        raise NoGpu("n/a: nvidia-ml-py is not installed (pip install 'labshare[gpu]')") from None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        raise NoGpu(f"no GPU: the NVIDIA driver does not answer ({exc})") from None
    try:
        devices = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            devices.append(_device(pynvml, index, handle))
        return devices
    except pynvml.NVMLError as exc:
        raise NoGpu(f"n/a: NVML failed while reading the GPUs ({exc})") from None
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


def _device(pynvml: object, index: int, handle: object) -> GpuDevice:
    nv = pynvml
    util: int | None = None
    try:
        util = int(nv.nvmlDeviceGetUtilizationRates(handle).gpu)  # type: ignore[attr-defined]
    except nv.NVMLError:  # type: ignore[attr-defined]  # not supported on every board or MIG slice
        pass
    memory = nv.nvmlDeviceGetMemoryInfo(handle)  # type: ignore[attr-defined]
    processes: dict[int, int | None] = {}
    for getter in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
        try:
            running = getattr(nv, getter)(handle)
        except nv.NVMLError:  # type: ignore[attr-defined]
            continue
        for proc in running:
            if int(proc.pid) in processes:  # a pid doing compute and graphics is listed twice
                continue
            used = proc.usedGpuMemory
            processes[int(proc.pid)] = None if used is None else int(used)
    return GpuDevice(
        index=index,
        name=_text(nv.nvmlDeviceGetName(handle)),  # type: ignore[attr-defined]
        utilization_percent=util,
        memory_used_bytes=int(memory.used),
        memory_total_bytes=int(memory.total),
        processes=processes,
    )
