"""`labshare connect` against the manual way, on the same real sshd on loopback.

1. Time from `labshare connect --no-browser` to the first 200 from `/api/status`
   through the tunnel (connect's `ready` event, which it prints right after
   that 200; a second request afterwards checks it), vs `ssh -f -N -L ...` then polling; interleaved runs,
   median ratio printed (goal <= 1.15x).  Measured twice: as the first connect
   to the host (the server is asked where it listens) and as a later one (the
   laptop remembers it, see labshare/connect/known.py).  The manual way is
   given the socket and token; for the first connect it is also timed with
   the look-up a member would do by hand (`ssh HOST labshare info --json`
   first), for context.
   Then the same again over a simulated wide-area link: a relay in front of
   sshd that holds every chunk for half the round-trip time each way
   (BENCH_RTT_MS, default 40), since loopback makes the ssh login unrealistically
   short and so makes connect's fixed cost look as large as it can.
2. Reconnect time: kill connect's ssh process, time until `/api/status`
   answers again through the same local port (goal <= 2 s).

Needs root (it makes two throwaway Unix accounts); run as
`python benchmarks/bench_connect.py` from the test venv (scripts/test builds it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import psutil
import sshd as sshd_helper
from conftest import make_user
from test_connect import Connect

from labshare import probe

RUNS = int(os.environ.get("BENCH_RUNS", "7"))
RTT = float(os.environ.get("BENCH_RTT_MS", "40")) / 1000


class Relay:
    """127.0.0.1:<port> -> sshd, each chunk delivered RTT/2 after it arrived, in order."""

    def __init__(self, target_port: int, rtt: float):
        self.target_port, self.delay = target_port, rtt / 2
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, chunk = await queue.get()
                await asyncio.sleep(max(0.0, due - self.loop.time()))
                if not chunk:
                    writer.close()
                    return
                writer.write(chunk)
                await writer.drain()

        sender = asyncio.ensure_future(deliver())
        try:
            while True:
                chunk = await reader.read(65536)
                queue.put_nowait((self.loop.time() + self.delay, chunk))
                if not chunk:
                    break
            await sender
        finally:
            sender.cancel()


def wait_200(port: int, token: str, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    address = probe.Address(host="127.0.0.1", port=port)
    while time.monotonic() < deadline:
        if probe.status(address, token, timeout=2) is not None:
            return time.monotonic()
        time.sleep(0.01)
    raise TimeoutError(f"no 200 on {port}")


def time_connect(lab: sshd_helper.Lab, token: str, remembered: bool, host: str = "gpu1") -> float:
    if not remembered:
        for known in lab.laptop.home.rglob("known-*.json"):
            known.unlink()
    began = time.monotonic()
    c = Connect(lab.laptop, host)
    try:
        ready = c.wait_for("ready")
        took = time.monotonic() - began  # connect says ready only after its own 200 with the token
        wait_200(ready["local_port"], token)
        return took
    finally:
        c.close()


def time_manual(lab: sshd_helper.Lab, token: str, socket_path: str, host: str = "gpu1") -> float:
    port = sshd_helper.free_port()
    began = time.monotonic()
    lab.laptop.run_cmd(
        [
            "ssh",
            "-f",
            "-N",
            "-o",
            "ExitOnForwardFailure=yes",
            "-L",
            f"127.0.0.1:{port}:{socket_path}",
            host,
        ],
        check=True,
    )
    took = wait_200(port, token) - began
    for p in lab.laptop.processes():
        if p.name() == "ssh":
            p.kill()
    return took


def time_manual_lookup(lab: sshd_helper.Lab, token: str, host: str = "gpu1") -> float:
    """The manual first time: ask the server where it listens (a login of its own), then tunnel."""
    began = time.monotonic()
    info = lab.laptop.run_cmd(["ssh", host, ".local/bin/labshare info --json"], check=True)
    looked_up = time.monotonic() - began
    return looked_up + time_manual(lab, token, json.loads(info.stdout)["socket"], host)


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
        c.close()
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
        info = lab.server.info()
        token, socket_path = str(info.token), str(info.socket)
        relay = Relay(lab.sshd.port, RTT)
        far = dataclasses.replace(lab.sshd, port=relay.port)
        sshd_helper.write_client_config(lab.laptop, far, "gpu1-far", lab.server.name)
        for host, link in (("gpu1", "loopback"), ("gpu1-far", f"{RTT * 1000:.0f} ms round trip")):
            first: list[float] = []
            later: list[float] = []
            manual: list[float] = []
            lookup: list[float] = []
            for _ in range(RUNS):
                first.append(time_connect(lab, token, remembered=False, host=host))
                manual.append(time_manual(lab, token, socket_path, host=host))
                later.append(time_connect(lab, token, remembered=True, host=host))
                lookup.append(time_manual_lookup(lab, token, host=host))
            print(
                f"[{link}] manual ssh -f -N -L to first 200: median {statistics.median(manual):.3f} s, "
                f"runs={RUNS}"
            )
            for name, ours in (("first connect", first), ("later connect", later)):
                ratios = [a / b for a, b in zip(ours, manual, strict=True)]
                print(
                    f"[{link}] labshare {name} to first 200: median {statistics.median(ours):.3f} s, "
                    f"median ratio {statistics.median(ratios):.2f}x (goal <= 1.15x)"
                )
            ratios = [a / b for a, b in zip(first, lookup, strict=True)]
            print(
                f"[{link}] context: manual look-up (ssh HOST labshare info) then ssh -f -N -L: median "
                f"{statistics.median(lookup):.3f} s; labshare's first connect against it: "
                f"median ratio {statistics.median(ratios):.2f}x"
            )
        heal = time_reconnect(lab, token)
        print(
            f"reconnect after killing ssh: median {statistics.median(heal):.3f} s, "
            f"max {max(heal):.3f} s (goal <= 2 s), runs={len(heal)}"
        )
    finally:
        lab.server.run("stop")
        lab_gen.close()
        factory.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
