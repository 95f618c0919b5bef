"""The stand-in libnvidia-ml.so.1 answers the real nvidia-ml-py exactly as the file says.

Every value is read back through the unpatched pynvml in a fresh interpreter
(the library is found only through LD_LIBRARY_PATH, as on a GPU host), so a
struct field in the wrong place or a wrong two-call protocol fails here and
not, later, inside a GPU lease test.  The last test shows labshare's own
reader (`gpus/nvml.py`, via `labshare ps`) seeing the cards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from conftest import BIN, LABSHARE, free_port
from fake_gpus import MIB, Card, FakeNvml, GpuProc, fake_nvml, nvml_stub

READ_ALL = r"""
import json, sys
import pynvml as n

text = lambda v: v.decode() if isinstance(v, bytes) else v

def card(h, since):
    uuid = n.nvmlDeviceGetUUID(h)
    pci = n.nvmlDeviceGetPciInfo(h)
    m1 = n.nvmlDeviceGetMemoryInfo(h)
    m2 = n.nvmlDeviceGetMemoryInfo(h, version=n.nvmlMemory_v2)
    try:
        u = n.nvmlDeviceGetUtilizationRates(h)
        util = [u.gpu, u.memory]
    except n.NVMLError_NotSupported:
        util = None
    try:
        samples = [[s.pid, s.timeStamp, s.smUtil, s.memUtil] for s in n.nvmlDeviceGetProcessUtilization(h, since)]
    except n.NVMLError_NotFound:
        samples = []
    procs = lambda f: [[p.pid, p.usedGpuMemory, p.gpuInstanceId, p.computeInstanceId] for p in f(h)]
    return dict(
        index=n.nvmlDeviceGetIndex(h), name=n.nvmlDeviceGetName(h), uuid=uuid,
        by_uuid=n.nvmlDeviceGetIndex(n.nvmlDeviceGetHandleByUUID(uuid)),
        by_bus=n.nvmlDeviceGetIndex(n.nvmlDeviceGetHandleByPciBusId(text(pci.busId))),
        bus_id=text(pci.busId), legacy=text(pci.busIdLegacy), pci=[pci.domain, pci.bus, pci.device],
        mem=[m1.total, m1.free, m1.used], mem2=[m2.total, m2.reserved, m2.free, m2.used], util=util,
        compute=procs(n.nvmlDeviceGetComputeRunningProcesses),
        graphics=procs(n.nvmlDeviceGetGraphicsRunningProcesses), samples=samples,
    )

def dump(since=0):
    cards = [card(n.nvmlDeviceGetHandleByIndex(i), since) for i in range(n.nvmlDeviceGetCount())]
    init_v2 = [n.nvmlLib.nvmlInit_v2(), n.nvmlLib.nvmlShutdown()]  # what older pynvml releases call
    errors = [n.nvmlErrorString(code) for code in (n.NVML_ERROR_DRIVER_NOT_LOADED, n.NVML_ERROR_NOT_FOUND)]
    print(json.dumps(dict(driver=n.nvmlSystemGetDriverVersion(), nvml=n.nvmlSystemGetNVMLVersion(),
                          cuda=n.nvmlSystemGetCudaDriverVersion(), cards=cards, init_v2=init_v2,
                          errors=errors)), flush=True)

n.nvmlInit()
for line in iter(sys.stdin.readline, ""):
    dump(int(line))
n.nvmlShutdown()
"""

NO_INSTANCE = 0xFFFFFFFF


def reader(fake: FakeNvml, env: dict[str, str] | None = None) -> subprocess.Popen:
    """A Python that holds NVML open and prints every value each time it reads a timestamp line."""
    return subprocess.Popen(
        [sys.executable, "-c", READ_ALL],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": os.environ["PATH"], **(fake.env if env is None else env)},
    )


def read(proc: subprocess.Popen, since: int = 0) -> dict:
    assert proc.stdin and proc.stdout
    proc.stdin.write(f"{since}\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    assert line, proc.stderr.read() if proc.stderr else ""
    return json.loads(line)


def read_once(fake: FakeNvml, since: int = 0) -> dict:
    proc = reader(fake)
    try:
        return read(proc, since)
    finally:
        proc.communicate(timeout=60)


def expected(card: Card, index: int) -> dict:
    used, reserved, total = card.used_mib * MIB, card.reserved_mib * MIB, card.total_mib * MIB
    bus = card.bus_id.split(":")
    return {
        "index": index,
        "name": card.name,
        "uuid": card.uuid,
        "by_uuid": index,
        "by_bus": index,
        "bus_id": card.bus_id,
        "legacy": f"{bus[0][-4:]}:{bus[1]}:{bus[2][:2]}.0",
        "pci": [int(bus[0], 16), int(bus[1], 16), int(bus[2][:2], 16)],
        "mem": [total, total - used - reserved, used + reserved],
        "mem2": [total, reserved, total - used - reserved, used],
        "util": None if card.util is None else [card.util, card.mem_util],
    }


def test_every_value_round_trips_through_the_real_pynvml(fake_nvml: FakeNvml) -> None:
    fake = fake_nvml
    fake.driver, fake.nvml, fake.cuda = "535.154.05", "12.535.154.05", 12020
    fake.cards[1] = Card(
        uuid="MIG-GPU-5d7c4a2e-0000-1111-2222-333344445555/1/0",
        name="NVIDIA A100 MIG 3g.40gb",
        bus_id="00000000:86:00.0",
        total_mib=40960,
        used_mib=1024,
        util=None,
        reserved_mib=300,
    )
    fake.cards[2].used_mib, fake.cards[2].util, fake.cards[2].mem_util = 30000, 93, 41
    fake.procs = [
        GpuProc(gpu=2, pid=4242, used_mib=20000, sm=88, mem=30, seen_us=1_700_000_000_000_000),
        GpuProc(gpu=2, pid=4343, used_mib=None, sm=0, kind="both", seen_us=1_600_000_000_000_000),
        GpuProc(
            gpu=1,
            pid=77,
            used_mib=1024,
            sm=5,
            kind="graphics",
            gi=1,
            ci=0,
            seen_us=1_700_000_000_000_001,
        ),
    ]
    fake.write()
    seen = read_once(fake)
    assert (seen["driver"], seen["nvml"], seen["cuda"]) == ("535.154.05", "12.535.154.05", 12020)
    assert seen["init_v2"] == [0, 0] and seen["errors"] == ["Driver Not Loaded", "Not Found"]
    assert [{k: c[k] for k in expected(fake.cards[0], 0)} for c in seen["cards"]] == [
        expected(card, i) for i, card in enumerate(fake.cards)
    ]
    by_index = seen["cards"]
    assert by_index[2]["compute"] == [
        [4242, 20000 * MIB, NO_INSTANCE, NO_INSTANCE],
        [4343, None, NO_INSTANCE, NO_INSTANCE],
    ]
    assert by_index[2]["graphics"] == [[4343, None, NO_INSTANCE, NO_INSTANCE]]
    assert by_index[1]["compute"] == [] and by_index[1]["graphics"] == [[77, 1024 * MIB, 1, 0]]
    assert by_index[0]["compute"] == by_index[0]["graphics"] == by_index[0]["samples"] == []
    assert by_index[2]["samples"] == [
        [4242, 1_700_000_000_000_000, 88, 30],
        [4343, 1_600_000_000_000_000, 0, 0],
    ]
    assert by_index[1]["samples"] == [[77, 1_700_000_000_000_001, 5, 0]]


def test_process_utilisation_answers_has_it_used_the_card_since(fake_nvml: FakeNvml) -> None:
    """Only samples newer than the caller's timestamp come back; none at all is NVML's Not Found."""
    fake = fake_nvml
    now_us = int(time.time() * 1e6)
    fake.procs = [
        GpuProc(gpu=0, pid=10, used_mib=500, sm=0, seen_us=now_us - 3_600_000_000),
        GpuProc(gpu=0, pid=11, used_mib=500, sm=64, seen_us=now_us),
    ]
    fake.write()
    proc = reader(fake)
    try:
        assert [s[0] for s in read(proc, since=now_us - 7_200_000_000)["cards"][0]["samples"]] == [
            10,
            11,
        ]
        assert [s[:3] for s in read(proc, since=now_us - 60_000_000)["cards"][0]["samples"]] == [
            [11, now_us, 64]
        ]
        assert read(proc, since=now_us)["cards"][0]["samples"] == []
        fake.procs = [GpuProc(gpu=0, pid=10, used_mib=500, sm=12)]  # sampled at each read
        fake.write()
        before = int(time.time() * 1e6)
        sample = read(proc, since=before)["cards"][0]["samples"]
        assert (
            len(sample) == 1 and sample[0][0] == 10 and sample[0][1] > before and sample[0][2] == 12
        )
    finally:
        proc.communicate(timeout=60)


def test_a_file_changed_between_two_reads_is_seen_by_the_running_process(
    fake_nvml: FakeNvml,
) -> None:
    fake = fake_nvml
    proc = reader(fake)
    try:
        first = read(proc)
        assert len(first["cards"]) == 4 and all(c["compute"] == [] for c in first["cards"])
        fake.cards = fake.cards[:2]
        fake.cards[1].used_mib, fake.cards[1].util = 12000, 55
        fake.procs = [GpuProc(gpu=1, pid=999, used_mib=12000, sm=55)]
        fake.write()
        second = read(proc)
        assert [c["uuid"] for c in second["cards"]] == [c.uuid for c in fake.cards]
        assert second["cards"][1]["mem"][2] == 12000 * MIB and second["cards"][1]["util"] == [55, 0]
        assert second["cards"][1]["compute"] == [[999, 12000 * MIB, NO_INSTANCE, NO_INSTANCE]]
    finally:
        proc.communicate(timeout=60)


DRIVERLESS = r"""
import pynvml as n
try:
    n.nvmlInit()
except n.NVMLError_DriverNotLoaded as exc:
    print("driver not loaded:", exc)
else:
    print("init worked")
from labshare.gpus.nvml import read, read_nvml
print(read(read_nvml).unavailable)
"""


@pytest.mark.parametrize("how", ["file removed", "variable unset"])
def test_no_file_is_a_host_without_the_driver(fake_nvml: FakeNvml, how: str) -> None:
    env = {"PATH": os.environ["PATH"], **fake_nvml.env}
    if how == "file removed":
        fake_nvml.remove()
    else:
        del env["LABSHARE_FAKE_NVML"]
    done = subprocess.run(
        [sys.executable, "-c", DRIVERLESS], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "driver not loaded: Driver Not Loaded",
        "no GPU: the NVIDIA driver does not answer (Driver Not Loaded)",
    ]


def test_a_line_the_stub_cannot_parse_fails_loudly(fake_nvml: FakeNvml) -> None:
    fake_nvml.write(fake_nvml.text() + 'gpu GPU-x "no bus id"\n')
    init = "import pynvml as n\ntry: n.nvmlInit()\nexcept n.NVMLError as e: print(type(e).__name__)"
    done = subprocess.run(
        [sys.executable, "-c", init],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], **fake_nvml.env},
        timeout=60,
    )
    assert done.stdout.strip() == "NVMLError_Unknown"
    assert f"nvml stub: {fake_nvml.path}:8: this line does not parse" in done.stderr


def _jupyter_server(port: int, home: str) -> subprocess.Popen:
    """A real, plain Jupyter server (not labshare's): `ps` finds it by its command line."""
    return subprocess.Popen(
        [
            str(BIN / "jupyter-server"),
            "--allow-root",
            "--no-browser",
            f"--ServerApp.port={port}",
            f"--ServerApp.root_dir={home}",
        ],
        env={
            "PATH": os.environ["PATH"],
            "HOME": home,
            "JUPYTER_RUNTIME_DIR": f"{home}/runtime",
            "JUPYTER_TOKEN": "stub-test-token",
        },  # a token goes through the environment, never argv
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_labshare_ps_reads_the_cards_through_monitor_gpu(fake_nvml: FakeNvml, tmp_path) -> None:
    fake = fake_nvml
    server = _jupyter_server(free_port(), str(tmp_path))
    try:
        fake.cards[3].used_mib, fake.cards[3].util = 6144, 71
        fake.procs = [GpuProc(gpu=3, pid=server.pid, used_mib=6144, sm=71)]
        fake.write()
        env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LANG": "C.UTF-8", **fake.env}
        text = subprocess.run(
            [LABSHARE, "ps"], capture_output=True, text=True, env=env, timeout=120
        )
        assert text.returncode == 0, text.stderr
        rows = [
            line.split() for line in text.stdout.splitlines() if line.split()[:1] in (["0"], ["3"])
        ]
        assert rows[0][:5] == ["0", "NVIDIA", "A100-SXM4-80GB", "0", "%"]
        assert rows[1][:5] == ["3", "NVIDIA", "A100-SXM4-80GB", "71", "%"] and "6.0" in rows[1][5]

        done = subprocess.run(
            [LABSHARE, "ps", "--json"], capture_output=True, text=True, env=env, timeout=120
        )
        assert done.returncode == 0, done.stderr
        (mine,) = [s for s in json.loads(done.stdout) if s["pid"] == server.pid]
        assert mine["gpus"] == [3] and mine["gpu_memory_bytes"] == 6144 * MIB
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_doctor_names_the_driver_and_the_cards(fake_nvml: FakeNvml, tmp_path) -> None:
    fake_nvml.driver = "535.104.12"
    fake_nvml.cards = fake_nvml.cards[:2]
    fake_nvml.write()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LANG": "C.UTF-8", **fake_nvml.env}
    done = subprocess.run(
        [LABSHARE, "doctor", "--json"], capture_output=True, text=True, env=env, timeout=120
    )
    report = json.loads(done.stdout)
    (gpu,) = [c for c in report["checks"] if c["name"] == "gpu"]
    assert (gpu["status"], gpu["detail"]) == (
        "ok",
        "NVIDIA driver 535.104.12, 2 GPU(s): NVIDIA A100-SXM4-80GB, NVIDIA A100-SXM4-80GB",
    )
