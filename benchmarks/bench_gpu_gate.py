"""A kernel started from a kernelspec with labshare's GPU gate vs the same kernel without it.

What `jupyter execute`, papermill or VS Code pay for the gate: jupyter_client's
own KernelManager starts the kernel from a spec and waits for its
`kernel_info` reply (the moment a client can run a cell), then shuts it down
untimed.  Two sides against the plain spec, interleaved: the gate leasing a
card (`assign = "per-kernel"`, stand-in NVML with 4 cards, the C stub from
tests/) and the gate with leases off (its own cost: labshare's Python reading
the site config, then `exec`).  Goal: at most +15 % median.  Last, the CPU
time the gate itself takes (user + system, median), in front of `/bin/true`,
which a busy machine does not stretch as it stretches wall-clock time.

Run as root (the leases directory must be root-owned, 1777), from the
environment labshare is installed in:  python benchmarks/bench_gpu_gate.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench_gpu_lease import stand_in_gpus
from common import compare, isolated_home, machine, timed
from jupyter_client import KernelManager

from labshare.gpus.gate import Gated

KERNEL = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]


def write_spec(kernels: Path, name: str, argv: list[str]) -> None:
    (kernels / name).mkdir(parents=True)
    (kernels / name / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": name, "language": "python"})
    )


def kernel_start(name: str) -> Callable[[], float]:
    """Time one start until the kernel answers `kernel_info`; shut it down untimed."""

    def once() -> float:
        manager = KernelManager(kernel_name=name)
        client = None

        def start() -> None:
            nonlocal client
            manager.start_kernel(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            client = manager.client()
            client.start_channels()
            client.wait_for_ready(timeout=120)

        try:
            return timed(start)
        finally:
            if client is not None:
                client.stop_channels()
            manager.shutdown_kernel(now=True)

    return once


def gate_cpu(runs: int) -> float:
    """Median CPU seconds of the gate in front of `/bin/true` (a command that costs nothing)."""
    took = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(Gated(["/bin/true"]).argv(), check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        took.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(took)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the leases directory must be root-owned (1777)")
    print(machine())
    with stand_in_gpus() as gpus, isolated_home() as home:
        site = Path(home["HOME"]) / "site.toml"
        kernels = Path(tempfile.mkdtemp(dir=home["HOME"])) / "kernels"
        write_spec(kernels, "plain", KERNEL)
        write_spec(kernels, "gated", Gated(KERNEL).argv())
        os.environ.update(
            {
                **home,
                "LD_LIBRARY_PATH": gpus["LD_LIBRARY_PATH"],
                "LABSHARE_FAKE_NVML": gpus["LABSHARE_FAKE_NVML"],
                "LABSHARE_SITE_CONFIG": str(site),
                "JUPYTER_PATH": str(kernels.parent),
                "JUPYTER_RUNTIME_DIR": str(kernels.parent / "run"),
            }
        )
        plain, gated = kernel_start("plain"), kernel_start("gated")

        site.write_text(f'[gpus]\nassign = "per-kernel"\nleases_dir = "{gpus["LEASES"]}"\n')
        plain(), gated()  # warm both: the first start of each pays for cold caches
        leased, without = compare(
            "kernel start from its spec until kernel_info: the gate leasing a card (labshare) "
            "vs no gate (manual)",
            gated,
            plain,
            args.runs,
            "<= 1.15x",
        )
        print(f"  added     {1000 * (leased - without):+.0f} ms median")
        site.write_text('[gpus]\nassign = "off"\n')
        off, without = compare(
            "the same with leases off: the gate's own cost (labshare) vs no gate (manual)",
            gated,
            plain,
            args.runs,
            "<= 1.15x",
        )
        print(f"  added     {1000 * (off - without):+.0f} ms median")
        print(f"the gate's own CPU time, leases off: {1000 * gate_cpu(args.runs):.0f} ms median")
        site.write_text(f'[gpus]\nassign = "per-kernel"\nleases_dir = "{gpus["LEASES"]}"\n')
        print(
            f"the gate's own CPU time, leasing a card: {1000 * gate_cpu(args.runs):.0f} ms median"
        )


if __name__ == "__main__":
    main()
