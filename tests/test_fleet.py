"""`labshare fleet` and `connect GROUP` against simulated servers: real sshd in namespaces, real ssh.

The servers (tests/fleet_hosts.py) boot once for the module; the checks are
few tests that each walk a whole story, since every boot and every Lab
start costs seconds.  Leases are made by `labshare run` on the server
itself, by another member over ssh, so they are real leases of that
server's leases directory.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import fleet_hosts
import pytest
from conftest import LABSHARE, Accounts, wait_for
from fake_gpus import nvml_stub  # noqa: F401 - the session fixture, by name

from labshare import probe

pytestmark = [pytest.mark.sshd, pytest.mark.xdist_group("fleet")]

GROUP = "gpua,gpub,gpuc,gpud,gpue,gpuf"


@pytest.fixture(scope="module")
def fleet(module_users: Accounts, nvml_stub: Path) -> Iterator[fleet_hosts.Fleet]:  # noqa: F811
    yield from fleet_hosts.boot(module_users, nvml_stub)


def lease_all(fleet: fleet_hosts.Fleet, alias: str, count: int = 2) -> subprocess.Popen:
    """bob leases `count` cards of `alias` with `labshare run` there, held until killed."""
    proc = fleet.laptop.popen(
        ["ssh", f"{fleet.bob.name}@{alias}", "~/.local/bin/labshare", "run", "--gpus", str(count), "--", "sleep", "600"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    leases = fleet.servers[alias].leases

    def leased() -> bool:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else proc.returncode
        return len(list(leases.iterdir())) >= count

    wait_for(
        leased,
        timeout=60,
        what=f"bob's leases on {alias}",
        every=0.05,
    )
    return proc


def fleet_json(fleet: fleet_hosts.Fleet, *args: str) -> tuple[dict, float, subprocess.CompletedProcess]:
    began = time.monotonic()
    done = fleet.laptop.run("fleet", "--json", *args, timeout=60)
    took = time.monotonic() - began
    return json.loads(done.stdout), took, done


def by_host(report: dict) -> dict[str, dict]:
    return {s["host"]: s for s in report["servers"]}


def test_fleet_lists_every_card_with_its_server_leases_and_says_why_others_do_not_answer(
    fleet: fleet_hosts.Fleet,
) -> None:
    bob = lease_all(fleet, "gpua")
    try:
        report, took, done = fleet_json(fleet, GROUP, "--deadline", "5")
        assert done.returncode == 0, done.stderr
        servers = by_host(report)
        assert list(servers) == GROUP.split(",")
        a, b, c = servers["gpua"], servers["gpub"], servers["gpuc"]
        for name, s in (("gpua", a), ("gpub", b), ("gpuc", c)):
            assert s["reachable"] and s["hostname"] == name, s
            assert [card["uuid"] for card in s["cards"]] == [
                card.uuid for card in fleet.servers[name].nvml.cards
            ]
        assert all(card["holder"] == fleet.bob.name and not card["free"] for card in a["cards"])
        assert a["can_get"] == 0
        assert all(card["holder"] is None and card["free"] for card in b["cards"] + c["cards"])
        assert b["can_get"] == 2 and not b["mine"]["running"]
        assert servers["gpud"]["error"] == "too old" and "0.0.9" in servers["gpud"]["message"]
        assert "upgrade" in servers["gpud"]["message"]
        assert servers["gpue"]["error"] == "unreachable", servers["gpue"]
        assert servers["gpuf"]["error"] == "timeout", servers["gpuf"]
        # the hanging one is cut off by the 1 s handshake limit, well before the deadline
        assert servers["gpuf"]["seconds"] < 4, servers["gpuf"]
        assert took < 5, took

        text = fleet.laptop.run("fleet", GROUP, timeout=60)
        assert text.returncode == 0
        assert "gpua" in text.stdout and fleet.bob.name in text.stdout
        assert "too old" in text.stdout and "timeout" in text.stdout
    finally:
        bob.kill()
        bob.wait(10)
