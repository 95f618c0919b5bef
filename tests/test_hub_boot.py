"""A real JupyterHub booted from the generated config runs labshare's own server for each member.

One hub for the module (LocalProcessSpawner stands in for SystemdSpawner,
since systemd is not PID 1 here), the stand-in NVML with two cards and
`[gpus] assign = "per-kernel"`.  Through the hub's proxy, as Lab would: a
kernel per card, a third refused with labshare's sentence, leases that
`gpus` and `ps` on the host see; the server SIGKILLed and started again by
the hub adopts its kernels; an idle card is warned about, then reclaimed;
a member whose `labshare start` server runs keeps its kernel when the hub
takes over.  The tests run in order on one worker and build on each other.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from conftest import BIN, LABSHARE, Accounts, Member, free_port, lab_of, site_file, wait_for
from fake_gpus import FakeNvml, GpuProc, _shared_dir, cards, nvml_stub
from hub_fixture import Hub, adopt, boot, generate, hub_env, override, stand_ins, stop
from jupyter_api import Lab
from test_gpu_kernels import environ, kernel_pid

from labshare.gpus import leases

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("hub"), pytest.mark.timeout(900)]
_ = nvml_stub  # a fixture, used by name
HELD_MIB = 20000


@dataclass
class Booted:
    hub: Hub
    alice: Member
    bob: Member
    fake: FakeNvml
    leases: Path
    site: Path

    def as_root(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [LABSHARE, *args],
            env={**hub_env(self.site), **self.fake.env},
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture(scope="module")
def booted(module_users: Accounts, nvml_stub: Path) -> Iterator[Booted]:
    where = _shared_dir("labshare-hub-")
    fake, leases_dir = stand_ins(where, nvml_stub, 2)
    alice, bob = module_users(), module_users()
    for member in (alice, bob):
        adopt(member)
    port = free_port()
    site = site_file(
        where,
        f"""
[gpus]
assign = "per-kernel"
leases_dir = "{leases_dir}"
idle_reclaim_after = "12s"
reclaim_warning = "8s"
[users.{alice.name}]
memory_max = "2G"
cpus = 1.5
[hub]
port = {port}
""",
    )
    for member in (alice, bob):
        member.extra_env.update({"LABSHARE_SITE_CONFIG": str(site), **fake.env})
    hubdir = where / "hub"
    hubdir.mkdir()
    env = hub_env(site)
    generated = generate(site, hubdir, "systemd", env)
    config = override(
        generated,
        hubdir,
        extra=f"""
c.JupyterHub.spawner_class = "jupyterhub.spawner.LocalProcessSpawner"
c.Spawner.poll_interval = 1
c.Spawner.environment.update({fake.env!r})
""",
    )
    hub = boot(config, hubdir, port, env)
    try:
        yield Booted(hub=hub, alice=alice, bob=bob, fake=fake, leases=leases_dir, site=site)
    except BaseException:
        print(hub.log_text()[-8000:])
        raise
    finally:
        stop(hub)
        for member in (alice, bob):
            member.reap()
        shutil.rmtree(where, ignore_errors=True)


def held(booted: Booted) -> dict[str, str]:
    """kernel id -> card UUID, from the leases directory the hub's servers and `labshare start` share."""
    return {
        lease.kernel_id or "": lease.card
        for lease in leases.leases(booted.leases)
        if lease.stale is None
    }


def hub_record(member: Member) -> dict:
    """hub_server.json: the supervisor the hub's spawner started, and the Jupyter below it."""
    return json.loads((member.state_dir / "hub_server.json").read_text())


def test_the_hub_runs_labshares_server_with_a_lease_per_kernel(booted: Booted) -> None:
    alice = booted.alice
    server = booted.hub.spawn(alice.name)
    first = server.start_kernel()
    out = server.execute(first, "import sys; print(sys.prefix)", timeout=120)
    assert not out.strip().startswith(str(BIN.parent)), "a kernel ran labshare's own environment"
    second = server.ok(
        "POST", "/api/sessions", {"path": "train.ipynb", "type": "notebook", "kernel": {}}
    )["kernel"]["id"]
    uuids = {environ(kernel_pid(alice, k))["CUDA_VISIBLE_DEVICES"] for k in (first, second)}
    assert uuids == {card.uuid for card in booted.fake.cards}
    refused = server.call("POST", "/api/kernels", {})
    assert refused.status == 500
    assert re.fullmatch(
        rf"No GPU is free for this kernel: GPU 0 is leased to {alice.name}.*see `labshare gpus`\.",
        refused.json()["message"],
    ), refused.json()["message"]

    gpus = json.loads(booted.as_root("gpus", "--json").stdout)
    rows = [row for card in gpus["cards"] for row in card["leases"]]
    assert sorted(r["kernel_id"] for r in rows) == sorted([first, second])
    assert {r["user"] for r in rows} == {alice.name}
    (own,) = [s for s in alice.json("ps") if s["pid"] == hub_record(alice)["jupyter_pid"]]
    assert "started by JupyterHub" in own["notes"]
    notebooks = {k["kernel_id"]: k["notebook"] for k in own["kernels"]}
    assert notebooks[first] is None and notebooks[second] == "train.ipynb"
    (theirs,) = [s for s in booted.bob.json("ps", "--all-users") if s["user"] == alice.name]
    assert [k["notebook"] for k in theirs["kernels"]] == [None, None]  # only what ps shows everyone

    server_env = environ(hub_record(alice)["jupyter_pid"])
    assert (server_env["MEM_LIMIT"], server_env["CPU_LIMIT"]) == (str(2 * 2**30), "1.5")
    status = alice.json("status")
    assert status["hub_url"] and not status["running"]
    again = alice.run("start")
    assert again.returncode != 0 and "runs under JupyterHub" in again.stderr
    checks = {c["name"]: c for c in alice.json("doctor")["checks"]}
    assert checks["hub-server"]["status"] == "ok"
    assert checks["kernel-survival"]["detail"].startswith("active")
    assert checks["output-keeping"]["detail"].startswith("active")  # kept while no browser is open
    assert "labshare.jupyterside.cell_notices | extension was successfully loaded" in (
        booted.hub.log_text()
    )  # long cells are told of under the hub too
    news = server.ok("GET", "/lab/api/settings/@jupyterlab/apputils-extension:notification")
    assert news["schema"]["properties"]["fetchNews"]["default"] == "false"  # news pop-up off
    members = json.loads(booted.as_root("admin", "check", "--json").stdout)["members"]
    assert [m["server"] for m in members if m["user"] == alice.name] == ["JupyterHub"]


def test_a_crashed_server_comes_back_with_the_same_kernels(booted: Booted) -> None:
    """Jupyter SIGKILLed: labshare's supervisor (the spawner's process) restarts it, the hub never
    notices.  The supervisor SIGKILLed too: the hub starts the server again, and the Jupyter it
    left behind hands its kernels over."""
    alice = booted.alice
    server = booted.hub.lab(alice.name)
    kernels = sorted(held(booted))
    server.execute(kernels[0], "x = 42")
    first = hub_record(alice)
    os.kill(first["jupyter_pid"], signal.SIGKILL)
    wait_for(
        lambda: (
            hub_record(alice)["restarts"] == 1 and server.call("GET", "/api/status").status == 200
        ),
        what="the supervisor to restart Jupyter",
        ignoring=(OSError, KeyError, ValueError),
    )
    assert booted.hub.server(alice.name).get("ready") and hub_record(alice)["pid"] == first["pid"]
    assert set(kernels) <= {k["id"] for k in server.ok("GET", "/api/kernels")}
    assert server.execute(kernels[0], "print(x)").strip() == "42"

    orphan = psutil.Process(hub_record(alice)["jupyter_pid"])
    os.kill(first["pid"], signal.SIGKILL)
    wait_for(lambda: not booted.hub.server(alice.name), what="the hub to see the server gone")
    server = booted.hub.spawn(alice.name)
    assert set(kernels) <= {k["id"] for k in server.ok("GET", "/api/kernels")}
    assert server.execute(kernels[0], "print(x)").strip() == "42"
    assert sorted(held(booted)) == kernels
    # the old Jupyter handed over its kernels and ended (a zombie until whoever adopted it reaps it)
    assert not orphan.is_running() or orphan.status() == psutil.STATUS_ZOMBIE


def test_an_idle_card_is_warned_about_in_lab_then_reclaimed(booted: Booted) -> None:
    alice = booted.alice
    server: Lab = booted.hub.lab(alice.name)
    kernel, card = sorted(held(booted).items())[1]
    index = [c.uuid for c in booted.fake.cards].index(card)
    booted.fake.procs = [GpuProc(gpu=index, pid=kernel_pid(alice, kernel), used_mib=HELD_MIB, sm=0)]
    booted.fake.write()
    wait_for(
        lambda: [
            n
            for n in server.ok("GET", "/api/labshare/gpu-notices")["notices"]
            if n["kernel_id"] == kernel
        ],
        timeout=120,
        what="the reclaim warning Lab shows",
    )
    wait_for(lambda: kernel not in held(booted), timeout=120, what="the card to be reclaimed")
    wait_for(
        lambda: kernel not in {k["id"] for k in server.ok("GET", "/api/kernels")},
        what="Jupyter to forget the reclaimed kernel",
    )
    booted.fake.procs = []
    booted.fake.write()


def test_a_member_moved_to_the_hub_keeps_their_running_kernel_and_its_lease(booted: Booted) -> None:
    bob = booted.bob
    bob.run("start", check=True)
    own = lab_of(bob)
    kernel = own.start_kernel()
    own.execute(kernel, "y = 7")
    pid = kernel_pid(bob, kernel)
    assert kernel in held(booted)

    server = booted.hub.spawn(bob.name)
    assert [k["id"] for k in server.ok("GET", "/api/kernels")] == [kernel]
    assert server.execute(kernel, "print(y)").strip() == "7"
    assert kernel_pid(bob, kernel) == pid and psutil.pid_exists(pid)
    assert [k for k, _ in held(booted).items() if k == kernel] == [kernel]
    assert not (bob.state_dir / "server.json").exists()
