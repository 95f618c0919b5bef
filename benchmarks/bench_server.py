"""`labshare start` vs bare `jupyter lab`, `labshare status` vs `jupyter server list`, supervisor memory.

Run: python benchmarks/bench_server.py [--runs N]   (from the environment labshare is installed in)
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

from common import BIN, compare, isolated_home, machine, timed

from labshare import probe

LABSHARE = str(BIN / "labshare")


def labshare_start(env: dict[str, str]) -> float:
    took = timed(
        lambda: subprocess.run([LABSHARE, "start"], env=env, check=True, capture_output=True)
    )
    subprocess.run([LABSHARE, "stop"], env=env, check=True, capture_output=True)
    return took


def bare_jupyter(env: dict[str, str]) -> float:
    """The manual way, made as safe as labshare's: a socket and a token in the environment."""
    home = Path(env["HOME"])
    sock = home / "bare.sock"
    token = secrets.token_urlsafe(32)
    (home / "projects").mkdir(exist_ok=True)
    argv = [
        str(BIN / "jupyter-lab"),
        "--no-browser",
        f"--ServerApp.sock={sock}",
        f"--ServerApp.root_dir={home / 'projects'}",
    ]
    if os.getuid() == 0:
        argv.append("--ServerApp.allow_root=True")
    began = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        env={**env, "JUPYTER_TOKEN": token},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while probe.status(probe.Address(socket=str(sock)), token) is None:
            time.sleep(0.02)
        return time.perf_counter() - began
    finally:
        proc.terminate()
        proc.wait()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(machine())
    with isolated_home() as env:
        labshare_start(env)  # warm caches on both sides alike
        bare_jupyter(env)
        compare(
            "start until /api/status answers",
            lambda: labshare_start(env),
            lambda: bare_jupyter(env),
            args.runs,
            "<= 1.05x",
        )

        subprocess.run([LABSHARE, "start"], env=env, check=True, capture_output=True)
        status = json.loads(
            subprocess.run(
                [LABSHARE, "status", "--json"], env=env, capture_output=True, text=True
            ).stdout
        )
        compare(
            "status of a running server",
            lambda: timed(
                lambda: subprocess.run([LABSHARE, "status"], env=env, capture_output=True)
            ),
            lambda: timed(
                lambda: subprocess.run(
                    [str(BIN / "jupyter"), "server", "list"], env=env, capture_output=True
                )
            ),
            args.runs * 3,
            "labshare status <= 0.15 s",
        )
        sup, jup = rss_kib(status["supervisor_pid"]), rss_kib(status["pid"])
        print("memory per member, idle, no kernels")
        print(
            f"  supervisor RSS {sup / 1024:.1f} MiB (goal <= 15 MiB), jupyter server RSS {jup / 1024:.1f} MiB"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
