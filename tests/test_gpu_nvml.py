"""labshare's NVML reader (`gpus/nvml.py`) through the real nvidia-ml-py and the stand-in driver.

The reader runs in a fresh interpreter whose only NVML is the stub on
LD_LIBRARY_PATH, as the server, `ps` and `run` will: each card's UUID and
PCI bus id (what a kernel is told, and the order it is told in), and the
per-process samples since a moment that say whether a kernel used its card.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from fake_gpus import MIB, FakeNvml, GpuProc, fake_nvml, nvml_stub

READ = r"""
import dataclasses, json, sys
from labshare.gpus.nvml import read_nvml, read_process_use
use = read_process_use(float(sys.argv[1]))
print(json.dumps({"devices": [dataclasses.asdict(d) for d in read_nvml()],
                  "samples": [dataclasses.asdict(s) for s in use.samples], "unknown": sorted(use.unknown),
                  "peak": use.peak_by_pid()}))
"""


def _read(fake: FakeNvml, since: float) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", READ, str(since)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"], **fake.env},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_each_card_has_its_uuid_and_pci_bus_id(fake_nvml: FakeNvml) -> None:
    fake_nvml.cards[1].used_mib = 2048
    fake_nvml.procs = [GpuProc(gpu=1, pid=4242, used_mib=2048)]
    fake_nvml.write()
    devices = _read(fake_nvml, time.time())["devices"]
    assert [(d["index"], d["uuid"], d["pci_bus_id"]) for d in devices] == [
        (i, c.uuid, c.bus_id) for i, c in enumerate(fake_nvml.cards)
    ]
    assert (
        devices[1]["processes"] == {"4242": 2048 * MIB}
        and devices[1]["memory_used_bytes"] == 2048 * MIB
    )


def test_process_use_since_a_moment_names_the_card_and_skips_older_samples(
    fake_nvml: FakeNvml,
) -> None:
    now = time.time()
    at = int(now * 1e6)
    fake = fake_nvml
    fake.procs = [
        GpuProc(
            gpu=0, pid=10, used_mib=500, sm=0, seen_us=at - 3_600_000_000
        ),  # an hour ago: too old
        GpuProc(gpu=0, pid=11, used_mib=500, sm=64, mem=9, seen_us=at),
        GpuProc(gpu=2, pid=11, used_mib=500, sm=7, seen_us=at),
        GpuProc(gpu=3, pid=12, used_mib=500, sm=0, seen_us=at),
    ]
    fake.write()
    seen = _read(fake, now - 60)
    assert sorted((s["pid"], s["card"], s["sm_percent"]) for s in seen["samples"]) == [
        (11, fake.cards[0].uuid, 64),
        (11, fake.cards[2].uuid, 7),
        (12, fake.cards[3].uuid, 0),
    ]
    assert {s["at"] for s in seen["samples"]} == {at / 1e6}
    assert seen["peak"] == {"11": 64, "12": 0}
    assert seen["unknown"] == []  # "no sample" (NVML's Not Found) is an answer, not an unknown card
    assert _read(fake, now + 1)["samples"] == []
