"""`labshare gpus` (and the lease column of `ps`) against real leases, real processes and the stand-in NVML.

Leases are taken by real processes of real members through `gpus.leases`,
as a kernel's provisioner takes them; the stand-in `libnvidia-ml.so.1`
lists those processes' real pids on the cards, so what `gpus` reads is what
it would read on a GPU host: pids in /proc, files in a root-owned 1777
directory, cards through the unpatched nvidia-ml-py.  Notebook paths come
from a real labshare server and must reach its owner and root only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import LABSHARE, Member, lab_of, need_root, wait_for
from fake_gpus import MIB, FakeNvml, GpuProc, fake_nvml, leases_dir, nvml_stub

from labshare.monitor.leased import command

HOLD = r"""
import json, os, subprocess, sys
from pathlib import Path
from labshare.gpus import leases, place

order = json.loads(sys.argv[1])
cards = [place.Card(*c) for c in order["cards"]]
holder = leases.Holder(kernel_id=order.get("kernel_id"), label=order.get("label"), pid=order.get("pid") or os.getpid())
got = leases.claim(Path(order["dir"]), cards, place.PlacementRules(gpus=frozenset(order["on"])), holder)
child = subprocess.Popen(["sleep", "600"]) if order.get("child") else None
print(json.dumps({"cards": [l.card for l in got], "child": child.pid if child else None}), flush=True)
if order.get("hold"):
    sys.stdin.read()
"""


@dataclass
class Holder:
    """A real process of a member that holds a lease (as a kernel would) until the test ends it."""

    proc: subprocess.Popen
    child: int | None
    card: str

    @property
    def pid(self) -> int:
        return self.proc.pid


def lease(
    m: Member,
    fake: FakeNvml,
    directory: Path,
    on: int,
    *,
    hold: bool = True,
    child: bool = False,
    kernel_id: str | None = None,
    label: str | None = None,
    pid: int | None = None,
) -> Holder:
    """Have `m` lease card `on` through `gpus.leases.claim`, for itself or for `pid`."""
    order = {
        "dir": str(directory),
        "on": [on],
        "hold": hold,
        "child": child,
        "kernel_id": kernel_id,
        "label": label,
        "pid": pid,
        "cards": [
            [i, c.uuid, c.total_mib * MIB, c.used_mib * MIB] for i, c in enumerate(fake.cards)
        ],
    }
    proc = m.popen(
        [sys.executable, "-c", HOLD, json.dumps(order)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, proc.stderr.read() if proc.stderr else ""
    answer = json.loads(line)
    assert answer["cards"] == [fake.cards[on].uuid]
    return Holder(proc=proc, child=answer["child"], card=answer["cards"][0])


def site_config(fake: FakeNvml, directory: Path, assign: str = "per-kernel") -> Path:
    """A site config members may read, naming the leases directory."""
    path = fake.path.with_name(f"site-{assign}.toml")
    path.write_text(f'[gpus]\nassign = "{assign}"\nleases_dir = "{directory}"\n')
    path.chmod(0o644)
    return path


def gpus(
    m: Member | None, fake: FakeNvml, site: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """`labshare gpus ARGS` as `m` (or as root), seeing the stand-in cards."""
    env = {**fake.env, "LABSHARE_SITE_CONFIG": str(site)}
    if m is not None:
        return m.run("gpus", *args, env=env, timeout=120)
    full = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        **env,
    }
    return subprocess.run(
        [LABSHARE, "gpus", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def gpus_json(m: Member | None, fake: FakeNvml, site: Path) -> dict:
    done = gpus(m, fake, site, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    made: list[Holder] = []
    try:
        yield made
    finally:
        for h in made:
            if h.proc.poll() is None:
                h.proc.kill()
            h.proc.wait(timeout=30)


def test_gpus_shows_every_card_its_leases_the_unleased_and_the_stale(
    fake_nvml: FakeNvml, leases_dir: Path, make_user, holders: list[Holder]
) -> None:
    need_root("members of their own, whose leases and processes are told apart by uid")
    fake = fake_nvml
    alice, bob = make_user(), make_user()
    kernel = lease(alice, fake, leases_dir, 0, child=True, kernel_id="4f1c2a9e-kernel-of-alice")
    run = lease(bob, fake, leases_dir, 1, label="train")
    gone = lease(alice, fake, leases_dir, 3, hold=False, kernel_id="dead-kernel")
    holders += [kernel, run, gone]
    gone.proc.communicate(timeout=30)  # it exits: its lease is left behind, stale
    script = bob.popen(
        [sys.executable, "-c", "import time; time.sleep(600)", "--token", "s3cret-value", "[b]x"]
    )
    try:
        fake.cards[0].used_mib, fake.cards[0].util = 12 * 1024, 40
        fake.cards[2].used_mib = 4 * 1024
        fake.procs = [
            GpuProc(gpu=0, pid=kernel.pid, used_mib=10 * 1024),
            GpuProc(gpu=0, pid=kernel.child or 0, used_mib=2048),
            GpuProc(gpu=1, pid=run.pid, used_mib=5 * 1024),
            GpuProc(gpu=2, pid=script.pid, used_mib=3 * 1024),
            GpuProc(gpu=2, pid=kernel.child or 0, used_mib=1024),
        ]
        fake.write()
        site = site_config(fake, leases_dir)
        report = gpus_json(bob, fake, site)

        assert (report["assign"], report["leases_dir"], report["gpu_unavailable"]) == (
            "per-kernel",
            str(leases_dir),
            None,
        )
        cards = report["cards"]
        assert [(c["index"], c["uuid"], c["name"]) for c in cards] == [
            (i, c.uuid, c.name) for i, c in enumerate(fake.cards)
        ]
        assert (
            cards[0]["memory_used_bytes"],
            cards[0]["memory_total_bytes"],
            cards[0]["utilization_percent"],
        ) == (12 * 1024 * MIB, 81920 * MIB, 40)
        (mine,) = cards[0]["leases"]
        assert (mine["user"], mine["uid"], mine["kernel_id"], mine["pid"], mine["stale"]) == (
            alice.user,
            alice.uid,
            "4f1c2a9e-kernel-of-alice",
            kernel.pid,
            None,
        )
        assert mine["since"] and mine["notebook"] is None and mine["idle_seconds"] is None
        (theirs,) = cards[1]["leases"]
        assert (theirs["user"], theirs["label"], theirs["kernel_id"], theirs["pid"]) == (
            bob.user,
            "train",
            None,
            run.pid,
        )
        assert cards[2]["leases"] == []
        (stale,) = cards[3]["leases"]
        assert stale["user"] == alice.user and stale["stale"] == f"its process {gone.pid} has ended"

        # The kernel's child on card 0 runs under its lease; on card 2 it has none, nor has Bob's script.
        unleased = [
            (u["gpu"], u["user"], u["pid"], u["memory_bytes"], u["leased_elsewhere"])
            for u in report["unleased"]
        ]
        assert unleased == sorted(
            [
                (2, bob.user, script.pid, 3 * 1024 * MIB, False),
                (2, alice.user, kernel.child, 1024 * MIB, True),
            ],
            key=lambda u: u[2],
        )
        (bobs,) = [u for u in report["unleased"] if u["pid"] == script.pid]
        assert (
            bobs["command"]
            == f"{Path(sys.executable).name} -c import time; time.sleep(600) --token … [b]x"
        )
        assert bobs["uuid"] == fake.cards[2].uuid

        text = gpus(bob, fake, site)
        assert text.returncode == 0, text.stderr
        out = text.stdout
        assert (
            "s3cret" not in out
            and "--token … [b]x" in out
            and fake.cards[0].uuid in out
            and "GPU processes without a lease:" in out
        )
        row = next(
            line
            for line in out.splitlines()
            if line.startswith("0 ") and fake.cards[0].uuid in line
        )
        assert row.split()[-1] == alice.user and "12.0 GiB / 80.0 GiB" in row and "40 %" in row
        assert (
            next(line for line in out.splitlines() if line.startswith("2 ")).split()[-1] == "free"
        )
        assert f"STALE: its process {gone.pid} has ended" in out and "1 stale lease(s)" in out
        assert "kernel 4f1c2a9e" in out and "run train" in out and "(not yours)" in out
        as_root = gpus(None, fake, site)
        assert (
            as_root.returncode == 0 and "(not yours)" not in as_root.stdout
        )  # root could see any notebook
    finally:
        script.kill()
        script.wait(timeout=30)


def test_gpus_without_leasing_lists_gpu_processes_and_says_leases_are_off(
    fake_nvml: FakeNvml, leases_dir: Path, member: Member
) -> None:
    script = member.popen(["sleep", "600"])
    try:
        fake_nvml.procs = [GpuProc(gpu=1, pid=script.pid, used_mib=2048)]
        fake_nvml.write()
        site = site_config(fake_nvml, leases_dir, assign="off")
        done = gpus(member, fake_nvml, site)
        assert done.returncode == 0, done.stderr
        assert 'GPU leases are off on this host ([gpus] assign = "off")' in done.stdout
        assert "GPU processes:" in done.stdout and "sleep 600" in done.stdout
        assert "without a lease" not in done.stdout
    finally:
        script.kill()
        script.wait(timeout=30)


def test_gpus_on_a_host_without_the_driver_says_so(
    fake_nvml: FakeNvml, leases_dir: Path, member: Member
) -> None:
    fake_nvml.remove()
    site = site_config(fake_nvml, leases_dir)
    report = gpus_json(member, fake_nvml, site)
    assert report["cards"] == [] and "driver does not answer" in report["gpu_unavailable"]
    done = gpus(member, fake_nvml, site)
    assert done.returncode == 0 and "GPUs: no GPU: the NVIDIA driver does not answer" in done.stdout


def test_a_bad_site_config_is_one_clear_line(fake_nvml: FakeNvml, member: Member) -> None:
    site = fake_nvml.path.with_name("bad.toml")
    site.write_text('[gpus]\nassign = "sometimes"\n')
    done = gpus(member, fake_nvml, site)
    assert done.returncode != 0 and done.stdout == ""
    assert done.stderr.startswith("labshare: error: ") and "gpus.assign" in done.stderr


@pytest.mark.quick
def test_a_command_line_is_shown_without_connection_files_or_tokens() -> None:
    kernel = [
        "/opt/venv/bin/python",
        "-m",
        "ipykernel_launcher",
        "-f",
        "/home/alice/.local/share/jupyter/runtime/kernel-0a1b.json",
    ]
    assert command(kernel) == "python -m ipykernel_launcher -f …"
    assert command(["python", "--ServerApp.token=abc", "--password", "pw", "train.py"]) == (
        "python --ServerApp.token=… --password … train.py"
    )
    assert command([]) is None
    assert (
        command(["python", "x" * 200]).endswith("…")
        and len(command(["python", "x" * 200]) or "") == 80
    )


# A real labshare server: notebook paths and idleness reach the lease's owner and root, never another member.


@dataclass
class Lab:
    alice: Member
    bob: Member
    fake: FakeNvml
    site: Path
    kernel_id: str
    kernel_pid: int
    holder: Holder


def _kernel_pid(m: Member, kernel_id: str) -> int | None:
    done = m.run("ps", "--json", timeout=60)
    assert done.returncode == 0, done.stderr
    return next(
        (
            k["pid"]
            for s in json.loads(done.stdout)
            for k in s["kernels"]
            if k["kernel_id"] == kernel_id
        ),
        None,
    )


@pytest.fixture
def lab(fake_nvml: FakeNvml, leases_dir: Path, make_user) -> Iterator[Lab]:
    need_root("members of their own, so one cannot ask the other's server")
    alice, bob = make_user(), make_user()
    server_site = site_config(
        fake_nvml, leases_dir, assign="off"
    )  # the server takes no lease itself here
    started = alice.run("start", env={"LABSHARE_SITE_CONFIG": str(server_site)}, timeout=300)
    assert started.returncode == 0, started.stderr
    api = lab_of(alice)
    kernel_id = api.ok(
        "POST",
        "/api/sessions",
        {"path": "secret-plan.ipynb", "type": "notebook", "kernel": {"name": "python3"}},
    )["kernel"]["id"]
    api.execute(kernel_id, "print('ready')")  # it has started and is idle now
    pid = wait_for(lambda: _kernel_pid(alice, kernel_id), timeout=120, what="the kernel in ps")
    holder = lease(alice, fake_nvml, leases_dir, 0, hold=False, kernel_id=kernel_id, pid=pid)
    holder.proc.communicate(
        timeout=30
    )  # the lease is the kernel's now, as after the provisioner's rebind
    fake_nvml.procs = [GpuProc(gpu=0, pid=pid, used_mib=6144)]
    fake_nvml.cards[0].used_mib = 6144
    fake_nvml.write()
    try:
        yield Lab(alice, bob, fake_nvml, site_config(fake_nvml, leases_dir), kernel_id, pid, holder)
    finally:
        alice.run("stop", timeout=120)


def test_only_the_owner_and_root_see_the_leased_kernels_notebook_and_idleness(lab: Lab) -> None:
    (own,) = gpus_json(lab.alice, lab.fake, lab.site)["cards"][0]["leases"]
    assert (own["kernel_id"], own["pid"], own["notebook"], own["state"]) == (
        lab.kernel_id,
        lab.kernel_pid,
        "secret-plan.ipynb",
        "idle",
    )
    assert own["idle_seconds"] is not None and 0 <= own["idle_seconds"] < 3600
    (as_root,) = gpus_json(None, lab.fake, lab.site)["cards"][0]["leases"]
    assert as_root["notebook"] == "secret-plan.ipynb"

    report = gpus_json(lab.bob, lab.fake, lab.site)
    (seen,) = report["cards"][0]["leases"]
    assert (seen["user"], seen["kernel_id"], seen["pid"]) == (
        lab.alice.user,
        lab.kernel_id,
        lab.kernel_pid,
    )
    assert seen["notebook"] is None and seen["idle_seconds"] is None and report["unleased"] == []
    text = gpus(lab.bob, lab.fake, lab.site)
    assert (
        text.returncode == 0
        and "secret-plan" not in text.stdout + text.stderr
        and "(not yours)" in text.stdout
    )
    token = (lab.alice.state_dir / "token").read_text().strip()
    assert token not in text.stdout


def test_a_killed_kernels_lease_reads_stale_and_shows_no_notebook(lab: Lab) -> None:
    os.kill(lab.kernel_pid, signal.SIGKILL)  # the kernel dies; its lease is left behind

    def stale() -> dict | None:
        (seen,) = gpus_json(lab.alice, lab.fake, lab.site)["cards"][0]["leases"]
        return seen if seen["stale"] else None

    seen = wait_for(stale, timeout=60, what="the lease to read stale", every=1.0)
    assert seen["stale"] == f"its process {lab.kernel_pid} has ended" and seen["notebook"] is None


def _ps(m: Member, fake: FakeNvml, site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = m.run(*args, env={**fake.env, "LABSHARE_SITE_CONFIG": str(site)}, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def test_ps_and_top_show_each_kernels_lease_to_everyone(lab: Lab) -> None:
    servers = json.loads(_ps(lab.alice, lab.fake, lab.site, "ps", "--json").stdout)
    (kernel,) = [k for s in servers for k in s["kernels"] if k["kernel_id"] == lab.kernel_id]
    assert kernel["gpu_lease"] == [{"uuid": lab.fake.cards[0].uuid, "index": 0}]
    for m, args in (
        (lab.alice, ("ps",)),
        (lab.bob, ("ps", "--all-users")),
        (lab.alice, ("top", "--once")),
    ):
        out = _ps(m, lab.fake, lab.site, *args).stdout
        row = next(line for line in out.splitlines() if line.split()[:1] == [str(lab.kernel_pid)])
        assert "(lease: GPU 0)" in row, out
        assert ("secret-plan.ipynb" in row) == (m is lab.alice)
        assert "without a lease" not in out


def test_ps_and_top_warn_of_gpu_processes_without_a_lease_in_their_own_scope(
    fake_nvml: FakeNvml, leases_dir: Path, make_user
) -> None:
    need_root("members of their own, whose processes ps tells apart")
    alice, bob = make_user(), make_user()
    script = bob.popen([sys.executable, "-c", "import time; time.sleep(600)", "train.py"])
    try:
        fake_nvml.procs = [GpuProc(gpu=2, pid=script.pid, used_mib=3 * 1024)]
        fake_nvml.write()
        site = site_config(fake_nvml, leases_dir)
        warning = (
            f"warning: {bob.user}'s pid {script.pid} ({Path(sys.executable).name} -c import time; "
            "time.sleep(600) train.py) holds 3.0 GiB of GPU 2 without a lease, so a kernel may be placed on "
            "that card too; start such commands with `labshare run --gpus N -- COMMAND`."
        )
        assert warning in _ps(bob, fake_nvml, site, "ps").stdout.splitlines()
        assert warning in _ps(bob, fake_nvml, site, "top", "--once").stdout.splitlines()
        assert warning in _ps(alice, fake_nvml, site, "ps", "--all-users").stdout.splitlines()
        assert "without a lease" not in _ps(alice, fake_nvml, site, "ps").stdout  # not hers
        off = site_config(fake_nvml, leases_dir, assign="off")
        assert (
            "without a lease" not in _ps(bob, fake_nvml, off, "ps").stdout
        )  # leases are not the rule here
    finally:
        script.kill()
        script.wait(timeout=30)


def test_ps_still_works_when_the_site_config_is_broken(fake_nvml: FakeNvml, member: Member) -> None:
    site = fake_nvml.path.with_name("broken.toml")
    site.write_text("[gpus]\nper_kernel = -1\n")
    done = _ps(member, fake_nvml, site, "ps")
    assert done.stderr.startswith("GPU leases are not shown: ") and "gpus.per_kernel" in done.stderr


# `labshare doctor`'s gpus check and `labshare admin check`: the same site config, the same leases dir.


def doctor_gpus(m: Member, fake: FakeNvml, site: Path) -> tuple[int, dict]:
    done = m.run(
        "doctor", "--json", env={**fake.env, "LABSHARE_SITE_CONFIG": str(site)}, timeout=240
    )
    assert done.stdout.strip(), done.stderr
    report = json.loads(done.stdout)
    (found,) = [c for c in report["checks"] if c["name"] == "gpus"]
    return done.returncode, found


def test_doctor_fails_when_leases_cannot_work_and_names_the_fix(
    fake_nvml: FakeNvml, leases_dir: Path, member: Member
) -> None:
    missing = leases_dir.parent / "absent"
    code, found = doctor_gpus(member, fake_nvml, site_config(fake_nvml, missing))
    assert code == 1 and found["status"] == "fail"
    assert found["detail"].startswith(f"The GPU leases directory {missing} does not exist")
    assert found["fix"] == f"sudo install -d -m 1777 -o root {missing}"

    leases_dir.chmod(0o755)
    code, found = doctor_gpus(member, fake_nvml, site_config(fake_nvml, leases_dir))
    assert (
        code == 1
        and found["status"] == "fail"
        and "must be owned by root with mode 1777" in found["detail"]
    )
    leases_dir.chmod(0o1777)

    fake_nvml.remove()
    code, found = doctor_gpus(member, fake_nvml, site_config(fake_nvml, leases_dir))
    assert code == 1 and found["status"] == "fail"
    assert found["detail"].startswith(
        '[gpus] assign = "per-kernel", but NVML does not answer (no GPU: the NVIDIA '
        "driver does not answer (Driver Not Loaded))"
    )


def test_doctor_warns_of_stale_leases_and_unleased_processes(
    fake_nvml: FakeNvml, leases_dir: Path, make_user, holders: list[Holder]
) -> None:
    need_root("a member of their own, whose stale lease root's doctor names")
    alice = make_user()
    site = site_config(fake_nvml, leases_dir)
    holding = lease(alice, fake_nvml, leases_dir, 0, label="train")
    holders.append(holding)
    fake_nvml.procs = [GpuProc(gpu=0, pid=holding.pid, used_mib=1024)]
    fake_nvml.write()
    _, found = doctor_gpus(alice, fake_nvml, site)
    assert found["status"] == "ok", found
    assert found["detail"] == (
        f"leases in {leases_dir}: 1 live on 4 card(s), 1 per kernel, exclusive; "
        "every GPU process holds a lease"
    )

    gone = lease(alice, fake_nvml, leases_dir, 1, hold=False, kernel_id="gone")
    holders.append(gone)
    gone.proc.wait(timeout=30)
    script = alice.popen(["sleep", "600"])
    try:
        fake_nvml.procs.append(GpuProc(gpu=3, pid=script.pid, used_mib=2048))
        fake_nvml.write()
        _, found = doctor_gpus(alice, fake_nvml, site)
        assert found["status"] == "warn", found
        (name,) = [
            p.name for p in leases_dir.iterdir() if p.name.startswith(fake_nvml.cards[1].uuid)
        ]
        assert (
            f"1 stale: {alice.user}'s {name} (its process {gone.pid} has ended)" in found["detail"]
        )
        assert (
            f"1 GPU process(es) without a lease: {alice.user}'s pid {script.pid} (sleep 600, 2.0 GiB on GPU 3)"
            in (found["detail"])
        )
        assert (
            "labshare run --gpus N -- COMMAND" in found["fix"] and str(leases_dir) in found["fix"]
        )
    finally:
        script.kill()
        script.wait(timeout=30)


def test_doctor_without_leases_says_how_a_members_cards_reach_the_kernels(
    fake_nvml: FakeNvml, member: Member
) -> None:
    site = fake_nvml.path.with_name("static.toml")
    site.write_text(f"[users.{member.name}]\ngpus = [0, 1]\n")
    site.chmod(0o644)
    _, found = doctor_gpus(member, fake_nvml, site)
    assert found == {
        "name": "gpus",
        "status": "ok",
        "fix": None,
        "detail": 'GPU leases are off ([gpus] assign = "off"): your kernels get GPUs 0,1, named by UUID',
    }
    fake_nvml.remove()
    _, found = doctor_gpus(member, fake_nvml, site)
    assert (
        found["status"] == "warn"
        and "by index with CUDA_DEVICE_ORDER=PCI_BUS_ID" in found["detail"]
    )


def test_admin_check_shows_each_members_gpu_policy(
    fake_nvml: FakeNvml, leases_dir: Path, member: Member
) -> None:
    site = fake_nvml.path.with_name("policy.toml")
    site.write_text(
        f'[gpus]\nassign = "per-kernel"\nper_kernel = 1\nidle_reclaim_after = "2h"\n'
        f'leases_dir = "{leases_dir}"\n[users.{member.name}]\ngpus = [0, 2]\nmax_gpus = 1\n'
        "[admin]\nusers = []\n"
    )
    env = {"LABSHARE_SITE_CONFIG": str(site), **fake_nvml.env}
    result = json.loads(member.run("admin", "check", "--json", env=env).stdout)
    (mine,) = [m for m in result["members"] if m["user"] == member.name]
    assert (mine["gpus"], mine["max_gpus"], mine["per_kernel"]) == ([0, 2], 1, 1)
    assert not [p for p in result["problems"] if "shows none" in p], result["problems"]
    if not os.path.exists(
        "/proc/driver/nvidia/version"
    ):  # no stand-in, no driver: kernels could not start
        bare = {"LABSHARE_SITE_CONFIG": str(site)}
        said = json.loads(member.run("admin", "check", "--json", env=bare).stdout)["problems"]
        assert [
            p
            for p in said
            if "but this host shows none (no GPU: no NVIDIA driver on this host)" in p
        ], said
    assert result["gpus"]["assign"] == "per-kernel" and result["gpus"]["leases_dir"] == str(
        leases_dir
    )
    text = member.run("admin", "check", env=env).stdout
    assert (
        f"GPU leases: per kernel, 1 per kernel, exclusive, idle kernels' cards reclaimed after 2 h, warned "
        f"15 min ahead; leases in {leases_dir}."
    ) in text
    row = next(line for line in text.splitlines() if line.startswith(member.name))
    assert row.split()[4:7] == ["0,2", "1", "1"], row

    site.write_text(f"[users.{member.name}]\nmax_gpus = 2\n")
    result = json.loads(member.run("admin", "check", "--json", env=env).stdout)
    (mine,) = [m for m in result["members"] if m["user"] == member.name]
    assert (mine["gpus"], mine["max_gpus"], mine["per_kernel"]) == (None, 2, None)
    assert any(
        p.startswith(f"max_gpus of {member.name} caps GPU leases") for p in result["problems"]
    )
