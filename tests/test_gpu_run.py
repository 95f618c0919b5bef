"""`labshare run --gpus N -- CMD`: real commands under real leases, with the stand-in NVML.

Each test runs the installed `labshare` as a separate process, as a member
would in tmux; what the command was told is what it prints of its own
environment, and the leases are read from the directory afterwards.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import LABSHARE, wait_for
from fake_gpus import FakeNvml, fake_nvml, leases_dir, nvml_stub

from labshare.gpus import leases

SHOW = (
    "import os, json; "
    "print(json.dumps({k: os.environ.get(k) for k in ('CUDA_VISIBLE_DEVICES', 'CUDA_DEVICE_ORDER')}))"
)
WAIT = r"""
import os, signal, sys
def caught(signum, frame):
    os.write(1, b"caught %d\n" % signum)
    os._exit(40 + signum)
signal.signal(signal.SIGTERM, caught)
signal.signal(signal.SIGINT, caught)
print(os.getpid(), os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def site(tmp_path: Path, fake_nvml: FakeNvml, leases_dir: Path):
    """Run `labshare ...` on a host whose four cards are leased per kernel; returns a runner."""

    def write(text: str = f'[gpus]\nassign = "per-kernel"\nleases_dir = "{leases_dir}"\n') -> None:
        (tmp_path / "site.toml").write_text(text)

    write()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "LABSHARE_SITE_CONFIG": str(tmp_path / "site.toml"),
        **fake_nvml.env,
    }

    def labshare(*args: str, **kwargs) -> subprocess.Popen:
        return subprocess.Popen(
            [LABSHARE, *args],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.PIPE,
            **kwargs,
        )

    labshare.write = write  # type: ignore[attr-defined]
    return labshare


def finished(proc: subprocess.Popen, stdin: str = "") -> tuple[int, str, str]:
    out, err = proc.communicate(stdin, timeout=120)
    return proc.returncode, out, err


def test_the_command_is_told_its_card_by_uuid_and_its_exit_status_comes_back(
    site, fake_nvml: FakeNvml, leases_dir: Path
) -> None:
    fake_nvml.cards[0].used_mib = 50000  # placement: the emptiest card first
    fake_nvml.write()
    code, out, err = finished(
        site("run", "--gpus", "1", "--", sys.executable, "-c", SHOW + "; raise SystemExit(7)")
    )
    assert code == 7, err
    assert json.loads(out) == {
        "CUDA_VISIBLE_DEVICES": fake_nvml.cards[1].uuid,
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
    }
    assert leases.leases(leases_dir) == []

    code, out, err = finished(site("run", "--gpus", "0", "--", sys.executable, "-c", SHOW))
    assert code == 0 and json.loads(out) == {
        "CUDA_VISIBLE_DEVICES": "",
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
    }, err


def test_the_lease_names_the_command_and_a_second_run_is_refused_with_the_sentence(
    site, fake_nvml: FakeNvml, leases_dir: Path
) -> None:
    holder = site("run", "--gpus", "3", "--", sys.executable, "-c", WAIT)
    pid, told = holder.stdout.readline().split()
    held = leases.leases(leases_dir)
    assert {(x.pid, x.label, x.kernel_id) for x in held} == {(int(pid), "python", None)}
    assert (
        told.split(",")
        == [card.uuid for card in fake_nvml.cards[:3]]
        == sorted(x.card for x in held)
    )
    code, _, err = finished(site("run", "--gpus", "2", "--", "true"))
    user = held[0].user
    idle = (
        rf"{re.escape(user)} \(idle, leased \d+ s ago\)"  # the stand-in shows no process computing
    )
    assert code == 1 and re.fullmatch(
        rf"labshare: error: This command needs 2 GPUs but only 1 is free: GPU 0 is "
        rf"leased to {idle}, GPU 1 to {idle}, GPU 2 to {idle}; see `labshare gpus`.\n",
        err,
    ), err
    assert finished(holder, "done\n")[0] == 0
    assert leases.leases(leases_dir) == []


def test_the_lease_names_the_command_before_its_first_instruction(site, leases_dir: Path) -> None:
    """A command that reads its lease as its very first act already finds its own pid there.

    labshare hands the lease to the command's pid after starting it, and
    re-reads the directory to do so; 20,000 entries that are not leases make
    that re-read last long enough that, without the gate, the command's
    shell would find labshare's pid.
    """
    for i in range(20_000):
        (leases_dir / f"note-{i}").write_text("not a lease\n")
    first_act = f'echo $$; for f in {leases_dir}/*.*; do read -r line < "$f"; echo "$line"; done'
    for _ in range(3):
        code, out, err = finished(site("run", "--gpus", "2", "--", "/bin/sh", "-c", first_act))
        pid, *records = out.splitlines()
        assert code == 0 and len(records) == 2, err
        assert {json.loads(r)["pid"] for r in records} == {int(pid)}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_labshare_reaches_the_command_and_the_lease_goes(
    site, leases_dir: Path, signum: int
) -> None:
    run = site("run", "--gpus", "1", "--", sys.executable, "-c", WAIT)
    run.stdout.readline()
    run.send_signal(signum)
    assert (
        run.stdout.readline() == f"caught {int(signum)}\n"
    )  # before its stdin closes, which would end it too
    code, out, err = finished(run)
    assert (code, out) == (40 + signum, ""), err
    assert leases.leases(leases_dir) == []


def test_a_killed_labshare_leaves_the_lease_with_the_command_until_it_ends(
    site, leases_dir: Path
) -> None:
    run = site("run", "--gpus", "4", "--", sys.executable, "-c", WAIT)
    pid = int(run.stdout.readline().split()[0])
    run.kill()
    run.wait(timeout=30)
    assert all(lease.live and lease.pid == pid for lease in leases.leases(leases_dir))
    assert finished(site("run", "--gpus", "1", "--", "true"))[0] == 1
    run.stdin.write("done\n")
    run.stdin.close()
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), what="the command to end")
    code, _, err = finished(
        site("run", "--gpus", "4", "--", "true")
    )  # the stale leases are taken over
    assert code == 0, err
    assert leases.leases(leases_dir) == []


def test_what_labshare_run_refuses(site) -> None:
    assert finished(site("run", "--gpus", "1", "--", "no-such-command-here"))[1:] == (
        "",
        "labshare: error: labshare run no-such-command-here failed: no-such-command-here was not found.\n",
    )
    assert finished(site("run", "--gpus", "1"))[1:] == (
        "",
        "labshare: error: Name the command to run after `--`, e.g. `labshare run --gpus 1 -- python train.py`.\n",
    )
    site.write("")
    assert finished(site("run", "--gpus", "1", "--", "true"))[1:] == (
        "",
        (
            'labshare: error: GPUs are not leased on this host ([gpus] assign is "off" in the site config), so '
            "`--gpus` cannot be honoured; leave it out to run with the cards the site gives you, or use "
            "`--gpus 0` for none.\n"
        ),
    )


def test_where_gpus_are_not_leased_the_command_runs_with_the_cards_kernels_see(
    site, fake_nvml: FakeNvml, leases_dir: Path
) -> None:
    """A notice for a long script is for every lab, not only one that leases cards."""
    site.write("")  # assign = "off": every card, as the member's kernels see them
    code, out, err = finished(
        site("run", "--", sys.executable, "-c", SHOW + "; raise SystemExit(3)")
    )
    assert code == 3 and json.loads(out)["CUDA_VISIBLE_DEVICES"] is None, err
    code, out, err = finished(site("run", "--gpus", "0", "--", sys.executable, "-c", SHOW))
    assert code == 0 and json.loads(out)["CUDA_VISIBLE_DEVICES"] == "", err
    site.write(
        f'[gpus]\nassign = "off"\n\n[users.{pwd.getpwuid(os.getuid()).pw_name}]\ngpus = [1]\n'
    )
    code, out, err = finished(site("run", "--", sys.executable, "-c", SHOW))
    assert code == 0 and json.loads(out)["CUDA_VISIBLE_DEVICES"] == fake_nvml.cards[1].uuid, err
    assert leases.leases(leases_dir) == []
