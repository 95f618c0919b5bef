"""`read_nvml` against a stand-in for nvidia-ml-py's `pynvml` module, shaped like its API.

CI has no GPU, so these pin down how labshare reads what NVML returns: names
as bytes or str, `usedGpuMemory` of None (vGPU, MIG), a pid listed as both
compute and graphics, a board without utilisation counters, and a missing
driver.  The real library is exercised on a GPU host (see the README, "Who uses what").
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path
from types import SimpleNamespace as NS

import pytest

from labshare.gpus.nvml import GpuDevice, NoGpu, read, read_driver, read_nvml

pytestmark = pytest.mark.quick  # pure: scripts/test runs it first, as an ordinary user


class NVMLError(Exception):
    pass


def fake_pynvml(*, init_fails: bool = False) -> types.ModuleType:
    calls: list[str] = []
    boards = [
        dict(
            name=b"NVIDIA A100-SXM4-80GB",
            util=NS(gpu=93, memory=40),
            mem=NS(total=80 << 30, used=30 << 30),
            compute=[NS(pid=101, usedGpuMemory=20 << 30), NS(pid=102, usedGpuMemory=None)],
            graphics=[NS(pid=101, usedGpuMemory=20 << 30)],
        ),
        dict(
            name="NVIDIA A100 MIG 3g.40gb",
            util=None,
            mem=NS(total=40 << 30, used=1 << 30),
            compute=[],
            graphics=[],
        ),
    ]

    def init() -> None:
        calls.append("init")
        if init_fails:
            raise NVMLError("Driver Not Loaded")

    def util(handle: int) -> NS:
        if boards[handle]["util"] is None:
            raise NVMLError("Not Supported")
        return boards[handle]["util"]

    mod = types.ModuleType("pynvml")
    mod.NVMLError = NVMLError  # type: ignore[attr-defined]
    mod.nvmlInit = init  # type: ignore[attr-defined]
    mod.nvmlShutdown = lambda: calls.append("shutdown")  # type: ignore[attr-defined]
    mod.nvmlSystemGetDriverVersion = lambda: b"550.54.15"  # type: ignore[attr-defined]
    mod.nvmlDeviceGetCount = lambda: len(boards)  # type: ignore[attr-defined]
    mod.nvmlDeviceGetHandleByIndex = lambda i: i  # type: ignore[attr-defined]
    mod.nvmlDeviceGetName = lambda h: boards[h]["name"]  # type: ignore[attr-defined]
    mod.nvmlDeviceGetUUID = lambda h: f"GPU-fake-{h}"  # type: ignore[attr-defined]
    mod.nvmlDeviceGetPciInfo = lambda h: NS(busId=f"00000000:{h + 1:02X}:00.0".encode())  # type: ignore[attr-defined]
    mod.nvmlDeviceGetUtilizationRates = util  # type: ignore[attr-defined]
    mod.nvmlDeviceGetMemoryInfo = lambda h: boards[h]["mem"]  # type: ignore[attr-defined]
    mod.nvmlDeviceGetComputeRunningProcesses = lambda h: boards[h]["compute"]  # type: ignore[attr-defined]
    mod.nvmlDeviceGetGraphicsRunningProcesses = lambda h: boards[h]["graphics"]  # type: ignore[attr-defined]
    mod.calls = calls  # type: ignore[attr-defined]
    return mod


def test_reads_devices_and_per_process_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    nv = fake_pynvml()
    monkeypatch.setitem(sys.modules, "pynvml", nv)
    devices = read_nvml()
    assert devices == [
        GpuDevice(
            0,
            "NVIDIA A100-SXM4-80GB",
            93,
            30 << 30,
            80 << 30,
            {101: 20 << 30, 102: None},
            uuid="GPU-fake-0",
            pci_bus_id="00000000:01:00.0",
        ),
        GpuDevice(
            1,
            "NVIDIA A100 MIG 3g.40gb",
            None,
            1 << 30,
            40 << 30,
            {},
            uuid="GPU-fake-1",
            pci_bus_id="00000000:02:00.0",
        ),
    ]
    assert nv.calls == ["init", "shutdown"]  # type: ignore[attr-defined]
    reading = read(read_nvml)
    assert reading.memory_by_pid() == {101: 20 << 30, 102: 0}
    assert reading.devices_by_pid() == {101: [0], 102: [0]}


def test_doctor_reads_the_driver_through_the_same_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    from labshare.doctor.checks import gpu

    nv = fake_pynvml()
    monkeypatch.setitem(sys.modules, "pynvml", nv)
    driver, devices = read_driver()
    assert driver == "550.54.15" and devices == read_nvml()
    assert (
        gpu().detail
        == "NVIDIA driver 550.54.15, 2 GPU(s): NVIDIA A100-SXM4-80GB, NVIDIA A100 MIG 3g.40gb"
    )
    assert nv.calls == ["init", "shutdown"] * 3  # type: ignore[attr-defined]


def test_no_driver_is_a_reason_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(init_fails=True))
    with pytest.raises(NoGpu, match="driver does not answer") as failed:
        read_nvml()
    assert failed.value.cause == "Driver Not Loaded"  # what doctor shows beside its own sentence
    assert (
        read(read_nvml).unavailable
        == "no GPU: the NVIDIA driver does not answer (Driver Not Loaded)"
    )


def test_no_library_says_how_to_get_it_where_a_driver_is(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    smi = tmp_path / "nvidia-smi"  # on PATH: a driver's own tool
    smi.write_text("#!/bin/sh\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert "--extra gpu" in (read(read_nvml).unavailable or "")
    if not os.path.exists("/proc/driver/nvidia/version"):  # no driver: nothing to install
        monkeypatch.setenv("PATH", str(tmp_path / "none"))
        assert read(read_nvml).unavailable == "no GPU: no NVIDIA driver on this host"
