"""What output keeping costs: `labshare start` to ready, and the idle server's memory, with and without it.

Run: python benchmarks/bench_outputs.py [--runs N]   (from the environment labshare is installed in)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

from common import BIN, isolated_home, machine, timed

LABSHARE = str(BIN / "labshare")
SETTLE_SECONDS = 3.0


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def one_run(keep: bool) -> tuple[float, float]:
    """Seconds from `labshare start` to a server that answers, and its RSS once idle."""
    flag = "--keep-outputs" if keep else "--no-keep-outputs"
    with isolated_home() as env:
        took = timed(
            lambda: subprocess.run(
                [LABSHARE, "start", flag], env=env, check=True, capture_output=True
            )
        )
        time.sleep(SETTLE_SECONDS)
        info = json.loads(
            subprocess.run(
                [LABSHARE, "status", "--json"], env=env, check=True, capture_output=True, text=True
            ).stdout
        )
        assert info["keep_outputs"] is keep, info
        memory = rss_mib(info["pid"])
        subprocess.run([LABSHARE, "stop"], env=env, check=True, capture_output=True)
    return took, memory


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    print(machine())
    results: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for i in range(runs):
        for keep in (True, False) if i % 2 == 0 else (False, True):
            results[keep].append(one_run(keep))
    for keep, label in ((True, "keep outputs (default)"), (False, "--no-keep-outputs")):
        starts = [s for s, _ in results[keep]]
        memory = [m for _, m in results[keep]]
        print(
            f"{label:24} start-to-ready median {statistics.median(starts):.2f} s "
            f"(runs {', '.join(f'{s:.2f}' for s in starts)}); "
            f"idle server RSS median {statistics.median(memory):.0f} MiB"
        )
    on = statistics.median(s for s, _ in results[True])
    off = statistics.median(s for s, _ in results[False])
    extra = statistics.median(m for _, m in results[True]) - statistics.median(
        m for _, m in results[False]
    )
    print(f"output keeping costs {on - off:+.2f} s at start and {extra:+.0f} MiB idle")


if __name__ == "__main__":
    main()
