"""`labshare fleet` over simulated servers, against asking them one by one by hand.

The servers are tests/fleet_hosts.py's: real sshd instances on their own
loopback addresses, each in its own UTS, mount and pid namespaces with its
own site config, leases and stand-in NVML (two cards each).

1. All answer (7 servers): `labshare fleet GROUP --json` vs the manual way,
   the slowest single `ssh HOST labshare gpus --json` of the seven (goal
   <= 1.2x), taken two ways: all seven at once (as a member with seven
   terminals; on this one machine they share its cores as fleet's calls
   do) and one after the other (each alone on the machine, as each real
   server answers on its own CPUs).  Interleaved runs, medians.  fleet's
   shared ssh logins are warm after its first run, as they are for a member
   who asks again within a minute; the first (cold) run is printed too.
2. 8 servers, one of which accepts and never answers: wall time of
   `labshare fleet GROUP --json` (goal <= 1.5 s, median); the hanging one
   alone, for context.
3. `labshare connect --no-browser GROUP` until its `ready` event, with the
   member's Lab already running on one server (so it is the one chosen) vs
   `labshare connect --no-browser HOST` to that server (goal <= 1.2x).
   Both are later connects: the laptop remembers the server.

Needs root (it makes throwaway Unix accounts and namespaces); run as
`python benchmarks/fleet.py` from the test venv (scripts/test builds it).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import fleet_hosts
from conftest import LABSHARE, Accounts
from fake_gpus import STUB_SOURCE
from test_fleet import Connect

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine

RUNS = int(os.environ.get("BENCH_RUNS", "9"))
SERVERS = tuple(f"gpu{i}" for i in range(1, 8))


def stub() -> Path:
    where = Path(tempfile.mkdtemp(prefix="labshare-bench-nvml-"))
    where.chmod(0o755)
    library = where / "libnvidia-ml.so.1"
    subprocess.run(
        ["cc", "-shared", "-fPIC", "-O2", "-std=gnu11", "-o", str(library), str(STUB_SOURCE)],
        check=True,
    )
    library.chmod(0o755)
    return where


def timed(argv: list[str], fleet: fleet_hosts.Fleet) -> float:
    began = time.perf_counter()
    done = fleet.laptop.run_cmd(argv, timeout=60)
    took = time.perf_counter() - began
    assert done.returncode in (0, 4), done.stderr
    return took


def main() -> None:
    print(machine())
    lib = stub()
    try:
        with Accounts() as users:
            boot = fleet_hosts.boot(users, lib, names=SERVERS, old=())
            fleet = next(boot)
            try:
                run(fleet)
            finally:
                boot.close()
    finally:
        shutil.rmtree(lib, ignore_errors=True)


def run(fleet: fleet_hosts.Fleet) -> None:
    group = ",".join(SERVERS)
    ours_argv = [LABSHARE, "fleet", group, "--json"]
    cold = timed(ours_argv, fleet)
    ours: list[float] = []
    together: list[float] = []
    apart: list[float] = []

    def single(host: str) -> float:
        return timed(["ssh", host, "~/.local/bin/labshare", "gpus", "--json"], fleet)

    def at_once() -> float:
        with ThreadPoolExecutor(len(SERVERS)) as pool:
            return max(pool.map(single, SERVERS))

    for i in range(RUNS):
        if i % 2:
            together.append(at_once())
            apart.append(max(single(host) for host in SERVERS))
            ours.append(timed(ours_argv, fleet))
        else:
            ours.append(timed(ours_argv, fleet))
            together.append(at_once())
            apart.append(max(single(host) for host in SERVERS))
    mo, mt, ma = statistics.median(ours), statistics.median(together), statistics.median(apart)
    print(f"fleet over {len(SERVERS)} servers, all answering ({RUNS} runs)")
    print(f"  labshare  median {mo:.3f} s   runs {', '.join(f'{x:.2f}' for x in ours)}")
    print(f"            first (cold) run {cold:.3f} s")
    print("  manual, the slowest single `ssh HOST labshare gpus --json`:")
    print(f"    all at once      median {mt:.3f} s   ratio {mo / mt:.2f}x   (goal <= 1.2x)")
    print(f"    one at a time    median {ma:.3f} s   ratio {mo / ma:.2f}x")

    hanging = [LABSHARE, "fleet", f"{group},{fleet.hanging}", "--json"]
    walls = [timed(hanging, fleet) for _ in range(RUNS)]
    print(f"fleet over {len(SERVERS) + 1} servers, one never answering ({RUNS} runs)")
    print(
        f"  labshare  median {statistics.median(walls):.3f} s   runs "
        f"{', '.join(f'{x:.2f}' for x in walls)}   (goal <= 1.5 s)"
    )
    alone = [timed([LABSHARE, "fleet", f"{fleet.hanging},", "--json"], fleet) for _ in range(3)]
    print(f"  the hanging server alone: median {statistics.median(alone):.3f} s")

    host = SERVERS[2]
    done = fleet.ssh(host, "~/.local/bin/labshare", "start")
    assert done.returncode == 0, done.stderr

    def connect(target: str) -> float:
        began = time.perf_counter()
        c = Connect(fleet, target)
        try:
            c.wait_for("ready")
            return time.perf_counter() - began
        finally:
            c.close()

    first_group = connect(group)  # asks the group; remembered as this group's choice from now on
    connect(host)  # the laptop remembers the server from now on, as after a member's first connect
    group_runs: list[float] = []
    host_runs: list[float] = []
    for i in range(RUNS):
        if i % 2:
            host_runs.append(connect(host))
            group_runs.append(connect(group))
        else:
            group_runs.append(connect(group))
            host_runs.append(connect(host))
    mg, mh = statistics.median(group_runs), statistics.median(host_runs)
    print(f"connect GROUP ({len(SERVERS)} servers, the Lab running on {host}) vs connect {host}")
    print(f"  labshare  median {mg:.3f} s   runs {', '.join(f'{x:.2f}' for x in group_runs)}")
    print(f"  HOST      median {mh:.3f} s   runs {', '.join(f'{x:.2f}' for x in host_runs)}")
    print(f"  ratio     {mg / mh:.2f}x   (goal <= 1.2x)")
    print(f"  the first connect GROUP (the group asked, nothing remembered): {first_group:.3f} s")
    fleet.ssh(host, "~/.local/bin/labshare", "stop")


if __name__ == "__main__":
    main()
