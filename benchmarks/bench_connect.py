"""`labshare connect` against the manual way, on the same real sshd on loopback.

1. Time from `labshare connect --no-browser` to the first 200 from `/api/status`
   through the tunnel, vs `ssh -f -N -L ...` then polling; interleaved runs,
   median ratio printed (goal <= 1.15x).  Measured twice: as the first connect
   to the host (the server is asked where it listens) and as a later one (the
   laptop remembers it, see labshare/connect/known.py).
2. Reconnect time: kill connect's ssh process, time until `/api/status`
   answers again through the same local port (goal <= 2 s).

Needs root (it makes two throwaway Unix accounts); run as
`python benchmarks/bench_connect.py` from the test venv (scripts/test builds it).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import psutil  # noqa: E402
import sshd as sshd_helper  # noqa: E402
from conftest import make_user  # noqa: E402
from test_connect import Connect  # noqa: E402

from labshare import probe  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "7"))


def wait_200(port: int, token: str, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    address = probe.Address(host="127.0.0.1", port=port)
    while time.monotonic() < deadline:
        if probe.status(address, token, timeout=2) is not None:
            return time.monotonic()
        time.sleep(0.01)
    raise TimeoutError(f"no 200 on {port}")


def time_connect(lab: sshd_helper.Lab, token: str, remembered: bool) -> float:
    if not remembered:
        for known in lab.laptop.home.rglob("known-*.json"):
            known.unlink()
    began = time.monotonic()
    c = Connect(lab.laptop, "gpu1")
    try:
        ready = c.wait_for("ready")
        return wait_200(ready["local_port"], token) - began
    finally:
        c.proc.terminate()
        c.proc.wait(30)


def time_manual(lab: sshd_helper.Lab, token: str, socket_path: str) -> float:
    port = sshd_helper.free_port()
    began = time.monotonic()
    lab.laptop.run_cmd(["ssh", "-f", "-N", "-o", "ExitOnForwardFailure=yes",
                        "-L", f"127.0.0.1:{port}:{socket_path}", "gpu1"], check=True)
    took = wait_200(port, token) - began
    for p in lab.laptop.processes():
        if p.name() == "ssh":
            p.kill()
    return took


def time_reconnect(lab: sshd_helper.Lab, token: str) -> list[float]:
    c = Connect(lab.laptop, "gpu1")
    out = []
    try:
        port = c.wait_for("ready")["local_port"]
        for _ in range(RUNS):
            (ssh,) = c.ssh_children()
            began = time.monotonic()
            ssh.kill()
            psutil.wait_procs([ssh], timeout=5)
            c.wait_for("reconnected")
            out.append(wait_200(port, token) - began)
    finally:
        c.proc.terminate()
        c.proc.wait(30)
    return out


def main() -> int:
    if os.geteuid() != 0:
        print("bench_connect needs root: it makes throwaway Unix accounts for both ends of ssh.")
        return 2
    factory = make_user.__wrapped__()
    make = next(factory)
    lab_gen = sshd_helper.build(make)
    lab = next(lab_gen)
    try:
        lab.server.run("start", check=True)
        info = lab.server.json("info")
        token, socket_path = info["token"], info["socket"]
        first: list[float] = []
        later: list[float] = []
        manual: list[float] = []
        for _ in range(RUNS):
            first.append(time_connect(lab, token, remembered=False))
            manual.append(time_manual(lab, token, socket_path))
            later.append(time_connect(lab, token, remembered=True))
        print(f"manual ssh -f -N -L to first 200: median {statistics.median(manual):.3f} s, runs={RUNS}")
        for name, ours in (("first connect", first), ("later connect", later)):
            ratios = [a / b for a, b in zip(ours, manual)]
            print(f"labshare {name} to first 200: median {statistics.median(ours):.3f} s, "
                  f"median ratio {statistics.median(ratios):.2f}x (goal <= 1.15x)")
        heal = time_reconnect(lab, token)
        print(f"reconnect after killing ssh: median {statistics.median(heal):.3f} s, "
              f"max {max(heal):.3f} s (goal <= 2 s), runs={len(heal)}")
    finally:
        lab.server.run("stop")
        lab_gen.close()
        factory.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
