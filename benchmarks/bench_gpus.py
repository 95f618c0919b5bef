"""`labshare gpus` on a busy GPU host: 8 cards and 40 GPU processes, through the real nvidia-ml-py.

No GPU is needed: the stand-in `libnvidia-ml.so.1` from tests/nvml_stub is
built with `cc` and serves 8 cards.  Eight real processes each lease one
card through `gpus.leases` (as kernels would) and start three children on
it; eight more processes hold a card with no lease (scripts in tmux), so
`gpus` has 40 pids to tie to leases by ancestry and 8 unleased ones to
name.  It times the whole command as a member types it (a throwaway
account) and as root, text and `--json`, and prints the median wall time
against the goal (<= 0.3 s) beside the CPU time the command used, which a
loaded machine inflates far less; it never fails on time.  No Jupyter
server is started: what asking servers costs is bench_ps.py's to measure.

Needs root (the leases directory must be root's, mode 1777; the member is made with useradd).
Run: sudo python benchmarks/bench_gpus.py [--runs 9]   (from the test venv scripts/test builds)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from common import BIN, machine
from fake_gpus import MIB, STUB_SOURCE, FakeNvml, GpuProc, cards

LABSHARE = str(BIN / "labshare")
CARDS, HOLDERS, CHILDREN, UNLEASED = 8, 8, 3, 8
GOAL = 0.3

HOLD = r"""
import json, subprocess, sys
from pathlib import Path
from labshare.gpus import leases, place

order = json.loads(sys.argv[1])
got = leases.claim(Path(order["dir"]), [place.Card(*c) for c in order["cards"]],
                   place.PlacementRules(gpus=frozenset([order["on"]])), leases.Holder(kernel_id=order["kernel_id"]))
children = [subprocess.Popen(["sleep", "3600"]).pid for _ in range(order["children"])]
print(json.dumps(children), flush=True)
sys.stdin.read()
"""


def build_stub(where: Path) -> Path:
    compiler = shutil.which("cc")
    if compiler is None:
        raise SystemExit("bench_gpus needs a C compiler (cc) to build the stand-in NVML")
    subprocess.run(
        [
            compiler,
            "-shared",
            "-fPIC",
            "-O2",
            "-std=gnu11",
            "-o",
            str(where / "libnvidia-ml.so.1"),
            str(STUB_SOURCE),
        ],
        check=True,
    )
    return where


def hold(fake: FakeNvml, leases_dir: Path, on: int) -> tuple[subprocess.Popen, list[int]]:
    order = {
        "dir": str(leases_dir),
        "on": on,
        "kernel_id": f"bench-kernel-{on}",
        "children": CHILDREN,
        "cards": [
            [i, c.uuid, c.total_mib * MIB, c.used_mib * MIB] for i, c in enumerate(fake.cards)
        ],
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, json.dumps(order)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"the lease holder for card {on} failed")
    return proc, json.loads(line)


def once(argv: list[str], env: dict[str, str], uid: int | None) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one run of `argv`, as `uid` (None: as root)."""
    as_user = (
        {} if uid is None else {"user": uid, "group": pwd.getpwuid(uid).pw_gid, "extra_groups": []}
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    subprocess.run(argv, env=env, capture_output=True, check=True, cwd="/", **as_user)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(env: dict[str, str], uid: int | None, runs: int) -> None:
    who = "as root" if uid is None else "as member"
    for words in (["gpus"], ["gpus", "--json"]):
        timings = [once([LABSHARE, *words], env, uid) for _ in range(runs)]
        wall, cpu = (
            statistics.median(t[0] for t in timings),
            statistics.median(t[1] for t in timings),
        )
        print(
            f"  {who:<9} labshare {' '.join(words):<12} wall median {wall:.3f} s (goal <= {GOAL} s), "
            f"CPU median {cpu:.3f} s   walls {', '.join(f'{t[0]:.2f}' for t in timings)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit(
            "bench_gpus needs root: the leases directory must be root's with mode 1777"
        )
    base = Path(tempfile.mkdtemp(prefix="labshare-bench-gpus-"))
    base.chmod(0o755)
    leases_dir = base / "leases"
    leases_dir.mkdir()
    leases_dir.chmod(0o1777)
    fake = FakeNvml(lib_dir=build_stub(base), path=base / "nvml.txt", cards=cards(CARDS))
    site = base / "site.toml"
    site.write_text(f'[gpus]\nassign = "per-kernel"\nleases_dir = "{leases_dir}"\n')
    site.chmod(0o644)
    member = f"lsb{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/bash", member], check=True)
    started: list[subprocess.Popen] = []
    orphans: list[int] = []  # the holders' children, ended by pid
    try:
        for on in range(HOLDERS):
            proc, children = hold(fake, leases_dir, on)
            started.append(proc)
            orphans += children
            fake.procs += [
                GpuProc(gpu=on, pid=pid, used_mib=4096, sm=50) for pid in (proc.pid, *children)
            ]
        for i in range(UNLEASED):
            script = subprocess.Popen(["sleep", "3600"])
            started.append(script)
            fake.procs.append(GpuProc(gpu=i % CARDS, pid=script.pid, used_mib=2048, sm=10))
        fake.write()
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(base),
            "LANG": "C.UTF-8",
            "LABSHARE_SITE_CONFIG": str(site),
            **fake.env,
        }
        report = json.loads(
            subprocess.run(
                [LABSHARE, "gpus", "--json"], env=env, capture_output=True, text=True, check=True
            ).stdout
        )
        leased = sum(len(c["leases"]) for c in report["cards"])
        print(machine())
        print(
            f"labshare gpus: {len(report['cards'])} cards, {len(fake.procs)} GPU processes, {leased} leases, "
            f"{len(report['unleased'])} unleased; median of {args.runs} runs; load average "
            f"{os.getloadavg()[0]:.1f}"
        )
        measure({**env, "USER": member, "LOGNAME": member}, pwd.getpwnam(member).pw_uid, args.runs)
        measure(env, None, args.runs)
    finally:
        for pid in orphans:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for proc in started:
            proc.kill()
            proc.wait(timeout=30)
        subprocess.run(["userdel", member], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
