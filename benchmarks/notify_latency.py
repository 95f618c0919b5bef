"""Notices: from the event to its delivery at a local endpoint, median (goal: at most 2 s).

A member (an isolated home) with their own channel, apprise's `json://` to
an HTTP receiver on 127.0.0.1 (tests/notify_endpoints.py).  Each run
writes one notice as a producer does (`notify.events.emit`, which also
starts the sender) and waits until the receiver has it.  "cold": no sender
was running, so the run pays for starting one (python, labshare, apprise);
"warm": the sender of the run before is still lingering.  As root it also
times the lab's path: member's sender -> spool -> root's service -> endpoint.

    python benchmarks/notify_latency.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from common import BIN, isolated_home, machine
from notify_endpoints import Endpoint  # tests/, on the path through common

from labshare.listeners import free_port
from labshare.notify import events
from labshare.notify.queue import held
from labshare.paths import Paths

LABSHARE = str(BIN / "labshare")


def arrival(endpoint: Endpoint, marker: str, timeout: float = 30.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(marker in m for m in endpoint.messages()):
            return time.perf_counter()
        time.sleep(0.005)
    raise SystemExit(f"notice {marker} did not arrive within {timeout:.0f} s")


def no_sender(paths: Paths) -> None:
    """Wait until the member's sender has exited, so the next run starts one."""
    lock = events.outbox(paths).ensure().lock_file
    while True:
        with held(lock, wait=False) as free:
            if free:
                return
        time.sleep(0.05)


def one(paths: Paths, endpoint: Endpoint, n: int) -> float:
    marker = f"bench-{os.getpid()}-{n}"
    began = time.perf_counter()
    assert events.emit(paths, events.Event("run", "finished", f"`{marker}`", 600.0))
    return arrival(endpoint, marker) - began


def report(label: str, times: list[float]) -> None:
    print(
        f"  {label:<28} median {statistics.median(times):.3f} s   "
        f"max {max(times):.3f} s   runs {len(times)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    print(machine())
    where = Path(tempfile.mkdtemp(prefix="labshare-bench-notify-"))
    endpoint = Endpoint("http", free_port(), where / "got.jsonl").start()
    try:
        with isolated_home() as env:
            env["LABSHARE_SITE_CONFIG"] = str(where / "site.toml")
            url = f"json://127.0.0.1:{endpoint.port}/bench"
            subprocess.run(
                [LABSHARE, "notify", "set", url, "--min-duration", "1s"], env=env, check=True
            )
            paths = Paths.from_env(env)
            print("event -> delivery at a local endpoint (goal: median at most 2 s)")
            cold = []
            for n in range(args.runs):
                no_sender(paths)
                cold.append(one(paths, endpoint, n))
            report("member's channel, cold", cold)
            warm = [one(paths, endpoint, 1000 + n) for n in range(args.runs)]
            report("member's channel, warm", warm)
            if os.geteuid() == 0:
                report("lab's channel (spool)", lab_path(where, endpoint, env, args.runs))
    finally:
        endpoint.stop()


def lab_path(where: Path, endpoint: Endpoint, env: dict[str, str], runs: int) -> list[float]:
    """The same, through the spool and root's service, with the member's own channel off."""
    spool = where / "spool"
    spool.mkdir()
    spool.chmod(0o1733)
    channels = where / "channels.toml"
    channels.write_text(f'urls = ["json://127.0.0.1:{endpoint.port}/lab/{{user}}"]\n')
    channels.chmod(0o600)
    (where / "site.toml").write_text(
        f'[notify]\nchannels_file = "{channels}"\nspool_dir = "{spool}"\n'
    )
    config = Path(env["HOME"]) / ".config/labshare/config.toml"
    config.write_text('[notify]\nmin_duration = "1s"\n')
    service = subprocess.Popen(
        [LABSHARE, "admin", "notices", "serve", "--state-dir", str(where / "service")],
        env={**os.environ, "LABSHARE_SITE_CONFIG": env["LABSHARE_SITE_CONFIG"]},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert service.stdout is not None and "serving" in service.stdout.readline()
        paths = Paths.from_env(env)
        times = []
        for n in range(runs):
            no_sender(paths)
            times.append(one(paths, endpoint, 2000 + n))
        return times
    finally:
        service.terminate()
        service.wait(30)


if __name__ == "__main__":
    main()
