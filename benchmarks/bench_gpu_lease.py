"""A kernel start with a GPU lease vs without: what leasing adds to opening a notebook.

The same member's server, started twice on the same stand-in NVML (the C
stub from tests/, built here with `cc`): once with `assign = "off"`, once
with `assign = "per-kernel"`.  Each run starts a kernel over the REST API
and shuts it down again; the lease side also reads NVML, claims a card and
hands the lease to the kernel's pid.  Goal: at most +50 ms median.

Run as root (the leases directory must be root-owned, 1777), from the
environment labshare is installed in:  python benchmarks/bench_gpu_lease.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from common import BIN, compare, isolated_home, machine, timed

from labshare import probe
from labshare.records.info import ServerInfo

LABSHARE = str(BIN / "labshare")
STUB = Path(__file__).resolve().parent.parent / "tests" / "nvml_stub" / "nvml_stub.c"


@contextmanager
def stand_in_gpus(cards: int = 4) -> Iterator[dict[str, str]]:
    """The stub `libnvidia-ml.so.1` and a file of `cards` idle A100s; the environment that shows them."""
    where = Path(tempfile.mkdtemp(prefix="labshare-bench-gpus-"))
    try:
        subprocess.run(
            [
                "cc",
                "-shared",
                "-fPIC",
                "-O2",
                "-std=gnu11",
                "-o",
                str(where / "libnvidia-ml.so.1"),
                str(STUB),
            ],
            check=True,
        )
        lines = ["driver 550.54.15", "nvml 12.550.54.15", "cuda 12040"]
        lines += [
            f'gpu GPU-{i:08x}-1111-2222-3333-{0xABCDEF000000 + i:012x} "NVIDIA A100-SXM4-80GB" '
            f"00000000:{0x1B + 0x20 * i:02X}:00.0 81920 0 0 mem=0 reserved=0"
            for i in range(cards)
        ]
        (where / "nvml.txt").write_text("\n".join(lines) + "\n")
        leases = where / "leases"
        leases.mkdir(mode=0o1777)
        leases.chmod(0o1777)
        yield {
            "LD_LIBRARY_PATH": str(where),
            "LABSHARE_FAKE_NVML": str(where / "nvml.txt"),
            "LEASES": str(leases),
        }
    finally:
        shutil.rmtree(where, ignore_errors=True)


def serve(env: dict[str, str], site: Path, assign: str, leases: str) -> tuple[probe.Address, str]:
    site.write_text(f'[gpus]\nassign = "{assign}"\nleases_dir = "{leases}"\n')
    subprocess.run([LABSHARE, "start"], env=env, check=True, capture_output=True)
    answer = subprocess.run(
        [LABSHARE, "info", "--json"], env=env, check=True, capture_output=True, text=True
    )
    info = ServerInfo.from_json(json.loads(answer.stdout), "`labshare info --json`")
    return probe.Address(socket=info.socket, port=info.port), str(info.token)


def start_kernel(address: probe.Address, token: str) -> str:
    reply = probe.request(
        address, "/api/kernels", token=token, method="POST", body=b"{}", timeout=60
    )
    assert reply.status == 201, reply.body[:300]
    return str(reply.json()["id"])


def kernel_start(address: probe.Address, token: str) -> Callable[[], float]:
    """Time one kernel start over REST (until Jupyter answers with its id); shut it down untimed."""

    def once() -> float:
        kernel: list[str] = []
        took = timed(lambda: kernel.append(start_kernel(address, token)))
        probe.request(
            address, f"/api/kernels/{kernel[0]}", token=token, method="DELETE", timeout=60
        )
        return took

    return once


def leases_while_running(address: probe.Address, token: str, directory: Path) -> int:
    """How many lease files one kernel of this server holds: proof the timed side really leases."""
    kernel = start_kernel(address, token)
    try:
        return len([p for p in directory.iterdir() if not p.name.startswith(".")])
    finally:
        probe.request(address, f"/api/kernels/{kernel}", token=token, method="DELETE", timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the leases directory must be root-owned (1777)")
    print(machine())
    with stand_in_gpus() as gpus, isolated_home() as home:
        site = Path(home["HOME"]) / "site.toml"
        env = {
            **home,
            "LD_LIBRARY_PATH": gpus["LD_LIBRARY_PATH"],
            "LABSHARE_FAKE_NVML": gpus["LABSHARE_FAKE_NVML"],
            "LABSHARE_SITE_CONFIG": str(site),
        }
        # One server per side, each warmed by one start; the runs alternate between them.
        env_off = {**env, "XDG_STATE_HOME": f"{home['HOME']}/state-off"}
        try:
            plain = kernel_start(*serve(env_off, site, "off", gpus["LEASES"]))
            server = serve(env, site, "per-kernel", gpus["LEASES"])
            leased = kernel_start(*server)
            plain(), leased()
            print(
                f"(a kernel of the leasing server holds {leases_while_running(*server, Path(gpus['LEASES']))} "
                "lease while it runs)"
            )
            ours, manual = compare(
                "kernel start over REST: with a GPU lease (labshare) vs without (manual)",
                leased,
                plain,
                args.runs,
                "<= +50 ms median",
            )
            print(f"  added     {1000 * (ours - manual):+.0f} ms median")
        finally:
            subprocess.run([LABSHARE, "stop"], env=env_off, capture_output=True, check=False)


if __name__ == "__main__":
    main()
