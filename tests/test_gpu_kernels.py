"""Kernels get their GPUs by UUID: statically, or by a lease per kernel taken in labshare's provisioner.

Real servers of real members (`labshare start`), real kernels started over
the REST API, the stand-in NVML on the servers' LD_LIBRARY_PATH, and a
leases directory made as an admin would (root, 1777).  What a kernel was
told is read from its /proc/PID/environ, not from anything labshare says.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import tomllib
from conftest import Member, lab_of, need_root, own_python3, site_file, wait_for
from fake_gpus import FakeNvml, GpuProc, fake_nvml, leases_dir, nvml_stub
from jupyter_api import Lab

from labshare.gpus import leases


def leased_site(where: Path, directory: Path, extra: str = "") -> Path:
    return site_file(where, f'[gpus]\nassign = "per-kernel"\nleases_dir = "{directory}"\n{extra}')


def kernel_pid(member: Member, kernel: str) -> int:
    return json.loads((member.state_dir / "kernels" / f"{kernel}.json").read_text())["pid"]


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(
        item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item
    )


def cuda(member: Member, kernel: str) -> tuple[str | None, str | None]:
    env = environ(kernel_pid(member, kernel))
    return env.get("CUDA_VISIBLE_DEVICES"), env.get("CUDA_DEVICE_ORDER")


def serve(member: Member, site: Path, fake: FakeNvml | None) -> Lab:
    member.extra_env.update({"LABSHARE_SITE_CONFIG": str(site), **(fake.env if fake else {})})
    member.run("start", check=True)
    return lab_of(member)


def refusal(lab: Lab, how: str = "kernels") -> str:
    """The message a refused start gives, through the kernels API or (as Lab opens a notebook) sessions."""
    if how == "kernels":
        answer = lab.call("POST", "/api/kernels", {})
    else:
        answer = lab.call(
            "POST",
            "/api/sessions",
            {"path": "a.ipynb", "type": "notebook", "kernel": {"name": "python3"}},
        )
    assert answer.status == 500, answer.body[:300]
    return answer.json()["message"]


def dead(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"


def test_static_gpus_are_told_by_uuid_in_bus_order(
    member: Member, fake_nvml: FakeNvml, shared_tmp: Path
) -> None:
    site = site_file(shared_tmp, f"[users.{member.name}]\ngpus = [1, 3]\n")
    lab = serve(member, site, fake_nvml)
    kernel = lab.start_kernel()
    assert cuda(member, kernel) == (
        f"{fake_nvml.cards[1].uuid},{fake_nvml.cards[3].uuid}",
        "PCI_BUS_ID",
    )
    member.run("stop", check=True)
    fake_nvml.remove()  # no driver: the indexes, which PCI_BUS_ID order makes NVML's
    lab = serve(member, site, fake_nvml)
    assert cuda(member, lab.start_kernel()) == ("1,3", "PCI_BUS_ID")


@pytest.fixture
def two(make_user, fake_nvml: FakeNvml, leases_dir: Path, shared_tmp: Path):
    """Alice and Bob, each with a server, on a host with two cards leased per kernel."""
    need_root("two members of their own, whose leases the sticky bit keeps apart")
    fake_nvml.cards = fake_nvml.cards[:2]
    fake_nvml.write()
    site = leased_site(shared_tmp, leases_dir)
    alice, bob = make_user(), make_user()
    for member in (alice, bob):
        own_python3(member)
    return (alice, serve(alice, site, fake_nvml)), (bob, serve(bob, site, fake_nvml))


IDLE = r" \(idle, leased \d+ (s|min) ago\)"


def sentence(by_card: list[str], how: tuple[str, str] = (IDLE, IDLE)) -> str:
    """The refusal as a pattern: each holder's name, then how it uses its card (`IDLE`, or " (busy)")."""
    (first, second), (first_how, second_how) = by_card, how
    return (
        f"No GPU is free for this kernel: GPU 0 is leased to {re.escape(first)}{first_how}, "
        f"GPU 1 to {re.escape(second)}{second_how}; see `labshare gpus`."
    )


def test_two_members_two_cards_each_kernel_its_own_card_and_a_third_refused(
    two, fake_nvml: FakeNvml, leases_dir: Path
) -> None:
    (alice, la), (bob, lb) = two
    uuids = [c.uuid for c in fake_nvml.cards]
    ka, kb = la.start_kernel(), lb.start_kernel()
    (seen_a, order), (seen_b, _) = cuda(alice, ka), cuda(bob, kb)
    assert {seen_a, seen_b} == set(uuids) and order == "PCI_BUS_ID"
    holders = [alice.name if seen_a == uuid else bob.name for uuid in uuids]
    assert re.fullmatch(sentence(holders), refusal(la))
    # Alice's kernel computes on its card: the sentence says so, from NVML's per-process samples.
    fake_nvml.procs = [
        GpuProc(gpu=uuids.index(seen_a), pid=kernel_pid(alice, ka), used_mib=2048, sm=60)
    ]
    fake_nvml.write()
    how = tuple(re.escape(" (busy)") if uuid == seen_a else IDLE for uuid in uuids)
    assert re.fullmatch(sentence(holders, how), refusal(lb, "sessions"))
    fake_nvml.procs = []
    fake_nvml.write()
    held = {
        lease.card: (lease.user, lease.kernel_id, lease.pid) for lease in leases.leases(leases_dir)
    }
    assert held == {
        seen_a: (alice.name, ka, kernel_pid(alice, ka)),
        seen_b: (bob.name, kb, kernel_pid(bob, kb)),
    }

    assert lb.call("DELETE", f"/api/kernels/{kb}").status == 204
    assert [lease.kernel_id for lease in leases.leases(leases_dir)] == [
        ka
    ]  # released, not merely stale
    again = la.start_kernel()
    assert cuda(alice, again)[0] == seen_b
    assert re.fullmatch(sentence([alice.name, alice.name]), refusal(lb))


@pytest.mark.slow
def test_twenty_kernel_starts_by_five_members_at_once_on_four_cards(
    make_user, fake_nvml: FakeNvml, leases_dir: Path, shared_tmp: Path
) -> None:
    """Through each member's own server, as Lab starts kernels: four get a card each, sixteen are refused."""
    need_root("five members of their own, racing for the cards")
    site = leased_site(shared_tmp, leases_dir)
    members = [make_user() for _ in range(5)]
    for member in members:
        own_python3(member)
    with ThreadPoolExecutor(len(members)) as pool:
        labs = list(pool.map(lambda m: serve(m, site, fake_nvml), members))
    asks = [(member, lab) for member, lab in zip(members, labs, strict=True) for _ in range(4)]
    with ThreadPoolExecutor(len(asks)) as pool:
        answers = list(pool.map(lambda ask: ask[1].call("POST", "/api/kernels", {}), asks))

    started = [
        (member, answer.json()["id"])
        for (member, _), answer in zip(asks, answers, strict=True)
        if answer.status == 201
    ]
    assert len(started) == 4, [(a.status, a.body[:200]) for a in answers]
    told = [cuda(member, kernel) for member, kernel in started]
    uuids = sorted(c.uuid for c in fake_nvml.cards)
    assert sorted(uuid for uuid, _ in told) == uuids and {order for _, order in told} == {
        "PCI_BUS_ID"
    }
    live = [lease for lease in leases.leases(leases_dir) if lease.live]
    assert sorted(lease.card for lease in live) == uuids
    assert {(lease.user, lease.kernel_id) for lease in live} == {
        (member.name, kernel) for member, kernel in started
    }

    holder = {uuid: member.name for (member, _), (uuid, _) in zip(started, told, strict=False)}
    names = [re.escape(holder[c.uuid]) + IDLE for c in fake_nvml.cards]
    expected = (
        f"No GPU is free for this kernel: GPU 0 is leased to {names[0]}, GPU 1 to {names[1]}, "
        f"GPU 2 to {names[2]}, GPU 3 to {names[3]}; see `labshare gpus`."
    )
    refused = [answer for answer in answers if answer.status != 201]
    assert len(refused) == 16 and {answer.status for answer in refused} == {500}
    for answer in refused:
        assert re.fullmatch(expected, answer.json()["message"]), answer.json()["message"]


def test_a_killed_kernel_frees_its_card_and_a_killed_server_keeps_its_kernels_cards(
    two, fake_nvml: FakeNvml, leases_dir: Path
) -> None:
    (alice, la), (bob, lb) = two
    # No restarter for Alice: a kernel that dies stays dead, as one whose server is gone would.
    config = alice.home / ".jupyter" / "jupyter_server_config.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"KernelManager": {"autorestart": False}}))
    for path in (config.parent, config):
        os.chown(path, alice.uid, -1)
    alice.run("restart", check=True)
    la = lab_of(alice)
    ka = la.start_kernel()
    os.kill(kernel_pid(alice, ka), signal.SIGKILL)
    wait_for(lambda: dead(kernel_pid(alice, ka)), what="the kernel to die")
    kb = lb.start_kernel()
    kb2 = lb.start_kernel()
    assert {cuda(bob, kb)[0], cuda(bob, kb2)[0]} == {
        c.uuid for c in fake_nvml.cards
    }  # one was the dead kernel's
    assert lb.call("DELETE", f"/api/kernels/{kb2}").status == 204
    card_b = cuda(bob, kb)[0]

    kept = la.start_kernel()
    assert cuda(alice, kept)[0] != card_b
    status = alice.json("status")
    os.kill(status["supervisor_pid"], signal.SIGKILL)
    os.kill(status["pid"], signal.SIGKILL)
    wait_for(lambda: dead(status["pid"]), what="the server to die")
    assert re.fullmatch(
        sentence([alice.name if c.uuid != card_b else bob.name for c in fake_nvml.cards]),
        refusal(lb),
    )
    alice.run("start", check=True)
    la = lab_of(alice)
    assert kept in {k["id"] for k in la.ok("GET", "/api/kernels")}
    lease = next(lease for lease in leases.leases(leases_dir) if lease.kernel_id == kept)
    assert lease.live and lease.pid == kernel_pid(alice, kept)
    assert la.call("DELETE", f"/api/kernels/{kept}").status == 204
    assert cuda(bob, lb.start_kernel())[0] == lease.card


def project_kernel(member: Member, name: str, gpus: object) -> str:
    """A kernelspec as labshare writes one, for a project whose pyproject asks for `gpus` cards."""
    project = member.home / "projects" / name
    project.mkdir(parents=True, exist_ok=True)
    (project / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\n\n[tool.labshare]\ngpus = {json.dumps(gpus)}\n'
    )
    spec = member.home / ".local/share/jupyter/kernels" / f"labshare-{name}" / "kernel.json"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": name,
                "language": "python",
                "metadata": {"labshare": {"schema": 1, "project": str(project)}},
            }
        )
    )
    return f"labshare-{name}"


def test_each_kernel_leases_what_its_project_asks_and_keeps_it_over_a_restart(
    member: Member, fake_nvml: FakeNvml, leases_dir: Path, shared_tmp: Path
) -> None:
    lab = serve(member, leased_site(shared_tmp, leases_dir), fake_nvml)
    assert (
        environ(member.json("status")["pid"]).get("CUDA_VISIBLE_DEVICES") == ""
    )  # nor do its terminals
    cpu, pair = project_kernel(member, "cpu", 0), project_kernel(member, "pair", 2)
    assert cuda(member, lab.start_kernel(cpu)) == ("", "PCI_BUS_ID")
    assert leases.leases(leases_dir) == []
    fake_nvml.cards[
        0
    ].used_mib = 40000  # placement takes the emptiest cards, but tells them in bus order
    fake_nvml.write()
    two = lab.start_kernel(pair)
    told = cuda(member, two)[0]
    assert told is not None and told.split(",") == [
        fake_nvml.cards[1].uuid,
        fake_nvml.cards[2].uuid,
    ]
    one = lab.start_kernel()  # not a project's: the site's per_kernel
    assert cuda(member, one)[0] == fake_nvml.cards[3].uuid

    before = kernel_pid(member, two)
    lab.ok("POST", f"/api/kernels/{two}/restart")
    after = kernel_pid(member, two)
    assert after != before and cuda(member, two)[0] == told
    assert sorted(lease.pid for lease in leases.leases(leases_dir) if lease.kernel_id == two) == [
        after,
        after,
    ]
    project_kernel(member, "pair", "lots")
    assert lab.call("DELETE", f"/api/kernels/{two}").status == 204
    pyproject = member.home / "projects" / "pair" / "pyproject.toml"
    assert refusal_of(lab, pair) == (
        f"{pyproject}: tool.labshare.gpus: must be a whole number of GPUs (0 for none), got 'lots'."
    )
    # Refused starts leave nothing behind that keeps the server from ending when asked to.
    assert member.json("stop")["forced"] is False


def test_a_typo_in_tool_labshare_refuses_the_kernel_instead_of_leasing_a_card(
    member: Member, fake_nvml: FakeNvml, leases_dir: Path, shared_tmp: Path
) -> None:
    lab = serve(member, leased_site(shared_tmp, leases_dir), fake_nvml)
    typo = project_kernel(member, "typo", 0)
    pyproject = member.home / "projects" / "typo" / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("gpus =", "gpu ="))
    assert refusal_of(lab, typo) == (
        f"{pyproject}: [tool.labshare] has no key `gpu`; did you mean `gpus`? "
        "Fix or remove it, then try again."
    )
    assert leases.leases(leases_dir) == []


def refusal_of(lab: Lab, name: str) -> str:
    answer = lab.call("POST", "/api/kernels", {"name": name})
    assert answer.status == 500, answer.body[:300]
    return answer.json()["message"]


@pytest.mark.parametrize("how", ["no driver", "no leases dir", "leases dir not sticky"])
def test_a_kernel_that_cannot_be_leased_a_card_does_not_start(
    member: Member, fake_nvml: FakeNvml, leases_dir: Path, shared_tmp: Path, how: str
) -> None:
    directory = leases_dir
    if how == "no driver":
        fake_nvml.remove()
        expected = (
            'GPUs are leased per kernel on this host ([gpus] assign = "per-kernel") but NVML does not '
            "answer (Driver Not Loaded), so no GPU can be leased and nothing was started."
        )
    elif how == "no leases dir":
        directory = leases_dir / "missing"
        expected = (
            f"The GPU leases directory {directory} does not exist; an admin must create it once with "
            f"`sudo install -d -m 1777 {directory}`."
        )
    else:
        leases_dir.chmod(0o777)
        expected = (
            f"The GPU leases directory {directory} must be owned by root with mode 1777 (sticky) so nobody "
            f"can remove another's lease; fix it with `sudo install -d -m 1777 -o root {directory}`."
        )
    lab = serve(member, leased_site(shared_tmp, directory), fake_nvml)
    assert refusal(lab) == expected
    assert lab.ok("GET", "/api/kernels") == [] and not list(
        (member.state_dir / "kernels").glob("*.json")
    )
    assert not list(
        (member.state_dir / "runtime").glob("kernel-*.json")
    )  # no connection file (a key) left


def test_env_create_and_adopt_gpus_is_what_the_projects_kernels_lease(
    member: Member, fake_nvml: FakeNvml, leases_dir: Path, shared_tmp: Path
) -> None:
    member.extra_env["UV_PYTHON_DOWNLOADS"] = "never"
    done = member.run("env", "create", "pair", "--gpus", "2", "--json", timeout=600)
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)
    pyproject = Path(made["project"]) / "pyproject.toml"
    assert tomllib.loads(pyproject.read_text())["tool"]["labshare"] == {"gpus": 2}
    lab = serve(member, leased_site(shared_tmp, leases_dir), fake_nvml)
    told = cuda(member, lab.start_kernel(made["name"]))[0]
    assert told is not None and len(told.split(",")) == 2

    again = member.run(
        "env", "adopt", made["project"], "--gpus", "0", "--yes", "--json", timeout=600
    )
    assert again.returncode == 0, again.stderr
    assert tomllib.loads(pyproject.read_text())["tool"]["labshare"] == {"gpus": 0}
    assert cuda(member, lab.start_kernel(made["name"])) == ("", "PCI_BUS_ID")

    plain = member.home / "plain"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(plain / ".venv")], check=True
    )
    refused = member.run("env", "adopt", str(plain), "--gpus", "1", "--yes")
    assert refused.returncode == 1 and refused.stderr == (
        f"labshare: error: {plain} has no pyproject.toml to keep `gpus = 1` in; adopt it without --gpus, "
        "or add a pyproject.toml first.\n"
    )
