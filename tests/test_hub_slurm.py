"""The hub's members' servers as real Slurm jobs: labshare's server inside, leasing only the job's cards.

One real cluster (tests/slurm.py: munged, slurmctld, slurmd on 127.0.0.1,
two stand-in GPUs of gres) and one hub booted from the config `hub-config
--spawner slurm` wrote, with the stand-in NVML listing four cards.  The
hub submits alice's server as a job asking `gpu:2`: while another job holds
both cards it waits in the queue and the spawn page says why; once it runs,
two kernels get the job's two cards, one each, never the other two the node
has, a third is refused; `scancel` ends the server and frees the leases.
Bob's limits ask for five cards, more than the node has: sbatch refuses and
the hub shows Slurm's reason.  Bad input (a partition Slurm does not know,
no labshare at the nodes' path) is refused by hub-config in one sentence.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import BIN, LABSHARE, Member, free_port, site_file, wait_for
from fake_gpus import FakeNvml, _shared_dir, cards, nvml_stub
from hub_fixture import TOKEN, Hub, adopt, boot, hub_env, override, stand_ins, stop
from slurm import Slurm, slurm
from test_gpu_kernels import environ, kernel_pid

from labshare.config import SlurmSettings
from labshare.errors import LabshareError
from labshare.gpus import leases
from labshare.hub import slurm as slurm_jobs

_ = (nvml_stub, slurm)  # fixtures, used by name


# --- the lines a member reads (pure) --------------------------------------------------------------


@pytest.mark.quick
def test_the_spawn_page_says_why_a_job_waits_was_refused_or_ended() -> None:
    assert slurm_jobs.pending_line("12", "PENDING n/a Resources") == (
        "Waiting in Slurm's queue: job 12 is pending because the cards, CPUs or memory it asks for "
        "are in use (Resources)."
    )
    assert slurm_jobs.pending_line("12", "PENDING n/a ReqNodeNotAvail, UnavailableNodes:n1") == (
        "Waiting in Slurm's queue: job 12 is pending because the nodes it needs are down, drained or "
        "reserved (ReqNodeNotAvail, UnavailableNodes:n1)."
    )
    assert slurm_jobs.pending_line("12", "PENDING n/a None") == (
        "Waiting in Slurm's queue: job 12 is pending."
    )
    refused = slurm_jobs.refused_line(
        "sbatch: error: Batch job submission failed: Requested node configuration is not available"
    )
    assert refused.startswith(
        "Slurm refused the server's job: Requested node configuration is not available; ask the admin"
    )
    failed = slurm_jobs.EndedJob.parse(
        "7",
        "JobId=7 JobName=spawner-jupyterhub JobState=FAILED Reason=NonZeroExitCode Dependency=(null) "
        "ExitCode=127:0 StdOut=/home/a/jupyterhub_slurmspawner_7.log",
    )
    assert failed.line() == (
        "Slurm job 7 ended before the server started (FAILED, exit code 127:0, NonZeroExitCode); "
        "its output is in /home/a/jupyterhub_slurmspawner_7.log."
    )
    cancelled = slurm_jobs.EndedJob.parse("8", "JobId=8 JobState=CANCELLED Reason=None")
    assert cancelled.line() == "Slurm job 8 was cancelled before the server started."
    assert "no longer says why" in slurm_jobs.EndedJob.parse("9", "").line()


@pytest.mark.quick
def test_what_hub_config_cannot_check_is_a_note_and_a_relative_command_is_refused() -> None:
    nodes_only = SlurmSettings(partition="gpu", labshare_only_on_nodes=True)
    command = "/opt/labshare/bin/labshare"
    no_sinfo = slurm_jobs.check(command, nodes_only, which=lambda _: None)
    assert no_sinfo == [
        f"{command} and /opt/labshare/bin/batchspawner-singleuser were not checked ([hub.slurm] "
        "labshare_only_on_nodes): every compute node must have them, or members' jobs end at once.",
        "sinfo is not installed on this host, so partition 'gpu' was not checked.",
    ]

    def unreachable(argv: list[str]) -> subprocess.CompletedProcess[str]:
        said = "slurm_load_partitions: Unable to contact slurm controller (connect failure)"
        return subprocess.CompletedProcess(argv, 1, "", said)

    (_, down) = slurm_jobs.check(
        command, nodes_only, which=lambda _: "/usr/bin/sinfo", run=unreachable
    )
    assert down == (
        "sinfo failed (slurm_load_partitions: Unable to contact slurm controller (connect failure)), "
        "so partition 'gpu' was not checked."
    )
    with pytest.raises(
        LabshareError, match=r"^The Slurm jobs would start members' servers with 'labshare'"
    ):
        slurm_jobs.check("labshare", nodes_only, which=lambda _: None)


# --- the hub on a real cluster --------------------------------------------------------------------


def hub_config(site: Path, slurm: Slurm, *args: str) -> subprocess.CompletedProcess[str]:
    """`labshare hub-config --spawner slurm ARGS` as the admin, on a host where sinfo reaches `slurm`."""
    return subprocess.run(
        [LABSHARE, "hub-config", "--spawner", "slurm", *args],
        env=hub_env(site, slurm.env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def progress(hub: Hub, name: str, until: re.Pattern[str], timeout: float = 120) -> str:
    """Read the hub's spawn progress (what the spawn page shows) until a message matches `until`."""
    conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=timeout)
    deadline = time.monotonic() + timeout
    seen = []
    try:
        conn.request(
            "GET",
            f"/hub/api/users/{name}/server/progress",
            headers={"Authorization": f"token {TOKEN}"},
        )
        answer = conn.getresponse()
        assert answer.status == 200, answer.read()[:300]
        while time.monotonic() < deadline:
            line = answer.readline()
            if not line:
                break
            if not line.startswith(b"data:"):
                continue
            message = json.loads(line[5:]).get("message", "")
            seen.append(message)
            if until.search(message):
                return message
    finally:
        conn.close()
    raise AssertionError(f"the spawn page never said {until.pattern!r}; it said {seen}")


def job_of(slurm: Slurm, user: str) -> str:
    out = slurm.run("squeue", "-h", "-u", user, "-o", "%i")
    return out.split()[0] if out.split() else ""


@pytest.mark.slow
@pytest.mark.xdist_group("slurm")
@pytest.mark.timeout(900)
def test_a_members_server_is_a_slurm_job_whose_kernels_lease_only_its_cards(
    slurm: Slurm, make_user, nvml_stub: Path
) -> None:
    where = _shared_dir("labshare-hub-slurm-")
    fake, leases_dir = stand_ins(where, nvml_stub, 4)
    alice, bob, carol = make_user(), make_user(), make_user()
    for member in (alice, bob, carol):
        adopt(member)
    port = free_port()
    site = site_file(
        where,
        f"""
[gpus]
assign = "per-kernel"
leases_dir = "{leases_dir}"
[users.{bob.name}]
max_gpus = 5
[hub]
port = {port}
labshare = "{LABSHARE}"
[hub.slurm]
partition = "{slurm.partition}"
gres = "gpu:2"
""",
    )
    hubdir = where / "hub"
    hubdir.mkdir()
    done = hub_config(site, slurm, "-o", str(hubdir / "jupyterhub_config.py"), "--json")
    assert done.returncode == 0, done.stderr
    text = (hubdir / "jupyterhub_config.py").read_text()
    assert "c.JupyterHub.spawner_class = 'labshare.hub.slurm_spawner.LabshareSlurmSpawner'" in text
    assert f"c.SlurmSpawner.batchspawner_singleuser_cmd = '{BIN}/batchspawner-singleuser'" in text
    assert "not checked" not in text  # sinfo knows the partition; labshare is on this host's path
    config = override(
        hubdir / "jupyterhub_config.py",
        hubdir,
        extra=f"""
c.Spawner.environment.update({{**{fake.env!r}, **{slurm.env!r}}})
c.LabshareSlurmSpawner.listen_ip = "127.0.0.1"
c.LabshareSlurmSpawner.state_exechost_exp = "127.0.0.1"
c.LabshareSlurmSpawner.startup_poll_interval = 0.5
c.Spawner.poll_interval = 2
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0}}  # the spawn request answers at once
# carol's nodes have no labshare where the config says: her job starts and fails at once.
c.JupyterHub.load_groups["broken"] = {{"users": [{carol.name!r}]}}
c.Spawner.group_overrides["broken"] = {{"groups": ["broken"], "spawner_override": {{
    "batchspawner_singleuser_cmd": "/nonexistent/bin/batchspawner-singleuser"}}}}
""",
    )
    blocker = ""
    hub = boot(config, hubdir, port, {**hub_env(site, slurm.env)})
    try:
        # Another job holds both cards: alice's job waits, and the spawn page says why.
        blocker = slurm.run(
            "sbatch", "--parsable", "--gres=gpu:2", "--output=/dev/null", "--wrap", "sleep 600"
        ).strip()
        wait_for(lambda: slurm.job_state(blocker) == "RUNNING", timeout=60, what="the blocking job")
        for member in (alice, bob, carol):
            assert hub.call("POST", f"/hub/api/users/{member.name}").status in (201, 409)
        started = hub.call("POST", f"/hub/api/users/{alice.name}/server")
        assert started.status in (201, 202), started.body
        # Just after sbatch the reason is "None"; once the scheduler has looked, it is Slurm's reason.
        waiting = progress(hub, alice.name, re.compile(r"Waiting in Slurm's queue.*\(Resources\)"))
        job = job_of(slurm, alice.name)
        assert waiting == (
            f"Waiting in Slurm's queue: job {job} is pending because the cards, CPUs or memory it "
            "asks for are in use (Resources)."
        )
        slurm.run("scancel", blocker)
        wait_for(
            lambda: hub.server(alice.name).get("ready"),
            timeout=300,
            what="alice's server in its Slurm job",
            ignoring=(OSError, ValueError),
        )
        assert slurm.job_state(job) == "RUNNING"
        lab = hub.lab(alice.name)

        # Two kernels, one card each, both the job's (Slurm gave it cards 0 and 1 of the four).
        first, second = lab.start_kernel(), lab.start_kernel()
        told = [environ(kernel_pid(alice, k))["CUDA_VISIBLE_DEVICES"] for k in (first, second)]
        assert sorted(told) == [fake.cards[0].uuid, fake.cards[1].uuid]
        assert environ(kernel_pid(alice, first)).get("SLURM_JOB_ID") == job
        refused = lab.call("POST", "/api/kernels", {})
        assert refused.status == 500
        assert re.fullmatch(
            rf"No GPU is free for this kernel: GPU 0 is leased to {alice.name}.*see `labshare gpus`\.",
            refused.json()["message"],
        ), refused.json()["message"]
        gpus = subprocess.run(
            [LABSHARE, "gpus", "--json"],
            env={**hub_env(site), **fake.env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        rows = [row for card in json.loads(gpus.stdout)["cards"] for row in card["leases"]]
        assert sorted(r["kernel_id"] for r in rows) == sorted([first, second])
        kernels = [kernel_pid(alice, k) for k in (first, second)]

        # scancel ends the server and its kernels, and the cards are free again.
        slurm.run("scancel", job)
        wait_for(
            lambda: not hub.server(alice.name), timeout=120, what="the hub to see the server gone"
        )
        wait_for(
            lambda: not any(os.path.exists(f"/proc/{pid}") for pid in kernels),
            timeout=60,
            what="the job's kernels to end",
        )
        wait_for(lambda: not leases.leases(leases_dir), timeout=60, what="the leases to be freed")
        after = subprocess.run(
            [LABSHARE, "gpus", "--json"],
            env={**hub_env(site), **fake.env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert not [row for card in json.loads(after.stdout)["cards"] for row in card["leases"]]

        # Bob asks for five cards on a node with two: Slurm refuses, and the hub says so.
        started = hub.call("POST", f"/hub/api/users/{bob.name}/server")
        failed = progress(hub, bob.name, re.compile("Slurm refused"))
        assert "Slurm refused the server's job: Requested node configuration is not available" in (
            failed
        ), failed
        assert not hub.server(bob.name)

        # Carol's job fails as it starts: the spawn fails at once, with the job's exit and output file.
        started = hub.call("POST", f"/hub/api/users/{carol.name}/server")
        ended = progress(hub, carol.name, re.compile("ended before the server started"))
        assert re.fullmatch(
            rf"Spawn failed: Slurm job \d+ ended before the server started \(FAILED, exit code \d+:\d+"
            rf"[^)]*\); its output is in {carol.home}/jupyterhub_slurmspawner_\d+\.log\.",
            ended,
        ), ended
        assert not hub.server(carol.name)
    except BaseException:
        print(hub.log_text()[-8000:])
        for log in alice.home.glob("jupyterhub_slurmspawner_*.log"):
            print(log.read_text()[-4000:])
        raise
    finally:
        stop(hub)
        if blocker:
            slurm.run("scancel", blocker, check=False)
        slurm.cancel_all()
        for member in (alice, bob, carol):
            member.reap()
        shutil.rmtree(where, ignore_errors=True)


@pytest.mark.xdist_group("slurm")
def test_hub_config_refuses_a_partition_slurm_lacks_and_no_labshare_at_the_nodes_path(
    slurm: Slurm, shared_tmp: Path
) -> None:
    def site(extra: str) -> Path:
        return site_file(shared_tmp, f"[hub]\n{extra}")

    unknown = hub_config(site('[hub.slurm]\npartition = "nosuch"\n'), slurm)
    assert unknown.returncode != 0 and "Traceback" not in unknown.stderr
    assert unknown.stderr.strip().splitlines() == [
        f"labshare: error: Slurm has no partition 'nosuch' (sinfo lists: {slurm.partition}); set "
        "[hub.slurm] partition to one of them, then run again."
    ]

    absent = hub_config(site('labshare = "/nonexistent/labshare/bin/labshare"\n'), slurm)
    assert absent.returncode != 0 and "Traceback" not in absent.stderr
    (line,) = absent.stderr.strip().splitlines()
    assert line.startswith(
        "labshare: error: The Slurm jobs would run /nonexistent/labshare/bin/labshare, but there is no "
        "labshare there on this host;"
    ), line

    # On the nodes only, as the admin says: not checked here, and the file says so.
    nodes_only = hub_config(
        site(
            'labshare = "/nonexistent/labshare/bin/labshare"\n'
            f'[hub.slurm]\nlabshare_only_on_nodes = true\npartition = "{slurm.partition}"\n'
        ),
        slurm,
        "--json",
    )
    assert nodes_only.returncode == 0, nodes_only.stderr
    made = json.loads(nodes_only.stdout)
    head = made["text"].split("import sys")[0]
    assert "# Note: /nonexistent/labshare/bin/labshare and" in head
    assert not any("not checked" in note for note in made["not_carried"])
