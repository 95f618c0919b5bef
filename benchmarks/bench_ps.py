"""`labshare ps` with many members running: how its time grows, and what one member costs in memory.

Makes Unix users (so it needs root), starts a real labshare server for each
with two kernels (a notebook session each), and times `labshare ps
--all-users --json` as root (asks every server for its notebooks) and as a
member (reads /proc only for others) at 5, 10, 20 and 30 servers.  Then
prints the supervisor + server memory per member, to show how many
members one machine holds.  Everything it starts is stopped and the users
removed at the end.

Run: sudo python benchmarks/bench_ps.py [--servers 30] [--kernels 2] [--runs 5]
     (with the Python labshare is installed in, readable by other users)
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
from common import BIN, machine, timed

from labshare import probe
from labshare.records.server import ServerState

LABSHARE = str(BIN / "labshare")
STEPS = (5, 10, 20, 30)
GOAL = 0.5


class Member:
    def __init__(self, base: Path):
        self.name = f"lsb{uuid.uuid4().hex[:8]}"
        subprocess.run(
            ["useradd", "--no-create-home", "--shell", "/bin/bash", self.name], check=True
        )
        self.pw = pwd.getpwnam(self.name)
        self.home = base / self.name
        self.home.mkdir(mode=0o755)
        os.chown(self.home, self.pw.pw_uid, self.pw.pw_gid)
        self.env = {
            "HOME": str(self.home),
            "PATH": f"{BIN}:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "USER": self.name,
            "LOGNAME": self.name,
        }

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [LABSHARE, *args],
            env=self.env,
            cwd=self.home,
            user=self.pw.pw_uid,
            group=self.pw.pw_gid,
            extra_groups=[],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    @property
    def state_dir(self) -> Path:
        return self.home / ".local/state/labshare" / socket.gethostname()

    def start(self, kernels: int) -> None:
        done = self.run("start")
        if done.returncode != 0:
            raise SystemExit(f"labshare start failed for {self.name}: {done.stderr.strip()}")
        path = self.state_dir / "server.json"
        record = ServerState.from_json(json.loads(path.read_text()), f"the state file {path}")
        address = probe.Address(socket=record.socket, port=record.port)
        token = (self.state_dir / "token").read_text().strip()
        for i in range(kernels):
            body = json.dumps(
                {"path": f"nb{i}.ipynb", "type": "notebook", "kernel": {"name": "python3"}}
            )
            resp = probe.request(
                address,
                "/api/sessions",
                token=token,
                method="POST",
                body=body.encode(),
                timeout=120,
            )
            if resp.status >= 300:
                raise SystemExit(
                    f"could not start a kernel for {self.name}: {resp.status} {resp.body[:200]!r}"
                )

    def remove(self) -> None:
        self.run("stop", timeout=120)
        procs = [
            p
            for p in psutil.process_iter(["uids"])
            if p.info["uids"] and p.info["uids"].real == self.pw.pw_uid
        ]
        for proc in procs:
            try:
                proc.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(procs, timeout=10)
        subprocess.run(["userdel", self.name], capture_output=True)


def ps_as(member: Member | None) -> list[dict]:
    argv = [LABSHARE, "ps", "--all-users", "--json"]
    if member is None:
        done = subprocess.run(
            argv, capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL
        )
    else:
        done = member.run("ps", "--all-users", "--json", timeout=60)
    return json.loads(done.stdout)


def median_time(member: Member | None, runs: int) -> tuple[float, list[float]]:
    ps_as(member)  # warm the page cache
    times = [timed(lambda: ps_as(member)) for _ in range(runs)]
    return statistics.median(times), times


def wait_for_kernels(members: list[Member], kernels: int, timeout: float = 300) -> list[dict]:
    names = {m.name for m in members}
    deadline = time.monotonic() + timeout
    while True:
        servers = [s for s in ps_as(None) if s["user"] in names and s["managed"]]
        if (
            sum(len(s["kernels"]) for s in servers) >= kernels * len(members)
            or time.monotonic() > deadline
        ):
            return servers
        time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=30)
    parser.add_argument("--kernels", type=int, default=2, help="kernels per server")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--parallel", type=int, default=4, help="servers started at once")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit(
            "bench_ps.py makes Unix users, so it needs root: sudo python benchmarks/bench_ps.py"
        )
    print(machine())
    print(
        f"labshare ps --all-users --json, {args.kernels} kernels per server, median of {args.runs} runs "
        f"(goal ≤ {GOAL} s)"
    )
    base = Path(tempfile.mkdtemp(prefix="labshare-bench-ps-"))
    os.chmod(base, 0o755)
    members: list[Member] = []
    try:
        steps = [n for n in STEPS if n < args.servers] + [args.servers]
        print(f"  {'servers':>7} {'kernels':>7} {'as root':>9} {'as member':>10}   runs (root)")
        servers: list[dict] = []
        for target in steps:
            new = [Member(base) for _ in range(target - len(members))]
            with ThreadPoolExecutor(args.parallel) as pool:
                list(pool.map(lambda m: m.start(args.kernels), new))
            members += new
            servers = wait_for_kernels(members, args.kernels)
            kernels = sum(len(s["kernels"]) for s in servers)
            root, runs = median_time(None, args.runs)
            member, _ = median_time(members[0], args.runs)
            print(
                f"  {len(servers):>7} {kernels:>7} {root:>8.3f}s {member:>9.3f}s   "
                f"{', '.join(f'{t:.2f}' for t in runs)}",
                flush=True,
            )
        per_member = [s["server_memory_bytes"] for s in servers]
        kernel_rss = [k["memory_bytes"] for s in servers for k in s["kernels"]]
        sup = [
            psutil.Process(s["supervisor_pid"]).memory_info().rss
            for s in servers
            if s.get("supervisor_pid")
        ]
        mib = 2**20
        avail = psutil.virtual_memory().total
        each = statistics.median(per_member)
        print("memory per member (RSS)")
        print(f"  supervisor           median {statistics.median(sup) / mib:7.1f} MiB")
        print(
            f"  supervisor + server  median {each / mib:7.1f} MiB   max {max(per_member) / mib:.1f} MiB"
        )
        print(f"  each idle kernel     median {statistics.median(kernel_rss) / mib:7.1f} MiB")
        print(
            f"  members this machine holds ({avail / 2**30:.0f} GiB, servers only, no kernels): "
            f"~{int(avail // each)}"
        )
    finally:
        with ThreadPoolExecutor(args.parallel) as pool:
            list(pool.map(Member.remove, members))
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
