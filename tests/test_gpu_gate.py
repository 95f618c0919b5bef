"""Every kernel under the GPU rules: the kernelspec's gate, whichever Jupyter client starts the kernel.

labshare's kernelspecs start with labshare's own Python running `labshare.gpus.gate`,
which leases the kernel's cards before the kernel exists and then `exec`s it.
The gate is run here as a client runs it: as a separate process with the stand-in
NVML and a real leases directory, and, end to end, by `jupyter execute` from a
venv that holds nbclient and jupyter_client and no labshare, on a project made
by `labshare env create`.  What a kernel was told is read from its own
/proc/PID/environ; leases from the directory and `labshare gpus --json`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import psutil
import pytest
from conftest import BIN, Member, lab_of, wait_for
from fake_gpus import FakeNvml, fake_nvml, leases_dir, nvml_stub
from test_gpu_kernels import environ, kernel_pid, leased_site

from labshare.envs.kernels import Target, problems_of, prune_stale, render
from labshare.gpus import leases
from labshare.gpus.gate import MODULE, Gated, client_of, unwrap, wait_for_end
from labshare.monitor import argv as cmd

# A kernel stand-in: says its pid and cards, then waits for a line on stdin (the test's "go").
SHOW_AND_WAIT = (
    "import json, os, sys; print(json.dumps({'pid': os.getpid(), 'cuda': os.environ.get("
    "'CUDA_VISIBLE_DEVICES'), 'order': os.environ.get('CUDA_DEVICE_ORDER')}), flush=True); "
    "sys.stdin.readline()"
)
REFUSED = (
    r"labshare: error: No GPU is free for this kernel: GPU 0 is leased to {user} "
    r"\(idle, leased \d+ (s|min) ago\); see `labshare gpus`\."
)


def spec_argv(python: str, project: Path | None = None) -> list[str]:
    return Gated([python, "-m", "ipykernel_launcher", "-f", "{connection_file}"], project).argv()


@pytest.mark.quick
def test_the_spec_starts_with_the_gate_and_is_stale_when_either_python_is_gone(
    tmp_path: Path,
) -> None:
    env = tmp_path / "proj" / ".venv"
    (env / "bin").mkdir(parents=True)
    python = env / "bin" / "python"
    python.symlink_to(sys.executable)
    spec = render(
        Target(
            project=tmp_path / "proj",
            env=env,
            python=python,
            python_version="3.11",
            manager="uv",
            label="proj",
        ),
        "proj",
    )
    gated = Gated.of(spec["argv"])
    assert spec["argv"][:4] == [sys.executable, "-I", "-m", MODULE] and gated is not None
    assert gated.project == tmp_path / "proj" and gated.command[:5] == [
        str(python),
        "-m",
        "ipykernel_launcher",
        "-f",
        "{connection_file}",
    ]
    assert unwrap(spec["argv"]) == gated.command and unwrap(gated.command) == gated.command
    assert problems_of(spec) == []
    python.unlink()
    assert problems_of(spec) == [f"interpreter {python} is missing"]
    python.symlink_to(sys.executable)
    gone = str(tmp_path / "old-labshare" / "bin" / "python")
    assert problems_of({**spec, "argv": [gone, *spec["argv"][1:]]}) == [
        f"labshare's own Python {gone}, which starts it under the GPU rules, is missing"
    ]


@pytest.mark.quick
def test_start_keeps_a_spec_whose_labshare_moved_behind_this_labshares_gate(tmp_path: Path) -> None:
    kernels, project = tmp_path / "kernels", tmp_path / "proj"
    project.mkdir()
    gone = str(tmp_path / "old-labshare" / "bin" / "python")
    for name, python in (
        ("labshare-moved", sys.executable),
        ("labshare-dead", str(tmp_path / "no-env" / "python")),
    ):
        spec = render(
            Target(
                project=project,
                env=project / ".venv",
                python=Path(python),
                python_version="3.11",
                manager="uv",
                label=name,
            ),
            name,
        )
        (kernels / name).mkdir(parents=True)
        (kernels / name / "kernel.json").write_text(
            json.dumps({**spec, "argv": [gone, *spec["argv"][1:]]})
        )
    assert prune_stale(kernels) == ["labshare-dead"]  # its kernel's own Python is gone too
    kept = json.loads((kernels / "labshare-moved" / "kernel.json").read_text())
    assert kept["argv"][0] == sys.executable and problems_of(kept) == []


@pytest.mark.quick
def test_ps_counts_the_kernel_after_exec_and_never_the_gate() -> None:
    argv = spec_argv("/env/bin/python")
    argv[argv.index("{connection_file}")] = "/run/kernel-1234.json"
    assert cmd.connection_file(argv) is None  # the gate before its exec, or the watcher it leaves
    assert cmd.connection_file(unwrap(argv)) == "/run/kernel-1234.json"  # the kernel it became
    assert cmd.kernel_id(cmd.connection_file(unwrap(argv))) == "1234"


def test_the_client_is_named_as_its_user_calls_it(tmp_path: Path) -> None:
    script = tmp_path / "papermill"
    script.write_text(f"#!{sys.executable}\nimport sys; sys.stdin.readline()\n")
    script.chmod(0o755)
    node = tmp_path / ".vscode-server" / "bin" / "abc" / "node"
    node.parent.mkdir(parents=True)
    node.symlink_to(sys.executable)
    for argv, name in (
        ([str(script)], "papermill"),
        ([str(node), "-c", "input()"], "code"),
        ([sys.executable, "-m", "timeit", "-n1", "-r1", "input()"], "timeit"),
    ):
        child = subprocess.Popen(argv, stdin=subprocess.PIPE, text=True)
        try:
            wait_for(
                lambda child=child, name=name: client_of(child.pid) == name,
                what=f"{argv} to be named {name}",
            )
        finally:
            child.communicate("\n", timeout=60)
    assert client_of(child.pid) is None


def test_waiting_for_the_end_without_a_pidfd_sees_a_zombie_as_ended() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    wait_for(lambda: psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE, what="the zombie")
    wait_for_end(child.pid, None)  # returns: the old kernels' way of watching, by looking
    child.wait()


@pytest.fixture
def gate(tmp_path: Path, fake_nvml: FakeNvml, leases_dir: Path):
    """Start `labshare.gpus.gate` as a Jupyter client would, with a kernel stand-in; cards leased per kernel."""
    site = leased_site(tmp_path, leases_dir)
    project = tmp_path / "demo"
    project.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "LABSHARE_SITE_CONFIG": str(site),
        **fake_nvml.env,
    }
    started: list[subprocess.Popen] = []

    def start(
        command: list[str] | None = None, parent: Sequence[str] = (), **extra: str
    ) -> subprocess.Popen:
        argv = [*parent, *Gated(command or [sys.executable, "-c", SHOW_AND_WAIT], project).argv()]
        child = subprocess.Popen(
            argv,
            env={**env, **extra},
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        started.append(child)
        return child

    start.site, start.project = site, project  # type: ignore[attr-defined]
    yield start
    for child in started:
        child.kill()
        child.communicate()


def told(kernel: subprocess.Popen) -> dict:
    line = kernel.stdout.readline()
    assert line, kernel.communicate()[1]
    return json.loads(line)


def held(directory: Path) -> list[leases.Lease]:
    return leases.leases(directory)


def test_the_gate_leases_before_the_kernel_runs_and_the_lease_goes_when_it_ends(
    gate, fake_nvml: FakeNvml, leases_dir: Path
) -> None:
    fake_nvml.cards[0].used_mib = 50000  # placement takes the emptiest card
    fake_nvml.write()
    kernel = gate()
    seen = told(kernel)
    assert seen["pid"] == kernel.pid  # exec'd: the lease's pid is the kernel's
    (lease,) = held(leases_dir)
    assert (lease.pid, lease.card, lease.client, lease.label, lease.kernel_id, lease.live) == (
        kernel.pid,
        fake_nvml.cards[1].uuid,
        client_of(os.getpid()),
        "demo",
        None,
        True,
    )
    assert (seen["cuda"], seen["order"]) == (lease.card, "PCI_BUS_ID")
    assert environ(kernel.pid)["CUDA_VISIBLE_DEVICES"] == lease.card
    kernel.communicate("go\n", timeout=60)
    wait_for(lambda: held(leases_dir) == [], what="the watcher to give the lease back")

    kernel = gate()
    told(kernel)
    kernel.send_signal(signal.SIGKILL)  # killed, not ended: given back all the same
    kernel.wait(60)
    wait_for(lambda: held(leases_dir) == [], what="the killed kernel's lease to go")


def test_no_card_free_is_the_labs_sentence_and_nothing_starts(
    gate, fake_nvml: FakeNvml, leases_dir: Path
) -> None:
    fake_nvml.cards = fake_nvml.cards[:1]
    fake_nvml.write()
    first = gate()
    told(first)
    second = gate()
    out, err = second.communicate(timeout=60)
    user = leases.leases(leases_dir)[0].user
    assert (
        second.returncode == 1
        and out == ""
        and re.fullmatch(REFUSED.format(user=re.escape(user)) + "\n", err)
    ), err
    assert [lease.pid for lease in held(leases_dir)] == [first.pid]


def test_a_kernel_an_earlier_labshares_lab_started_keeps_the_lease_that_lab_took(
    gate, fake_nvml: FakeNvml, leases_dir: Path
) -> None:
    """A Lab still running an earlier labshare leases in its provisioner and does not strip the gate."""
    earlier_lab = [
        sys.executable,
        "-c",
        "import subprocess, sys; sys.exit(subprocess.call(sys.argv[2:]))",
        "--ServerApp.kernel_manager_class=labshare.server.survive.LabshareKernelManager",
    ]
    by_provisioner = fake_nvml.cards[2].uuid
    kernel = gate(parent=earlier_lab, CUDA_VISIBLE_DEVICES=by_provisioner)
    assert told(kernel)["cuda"] == by_provisioner and held(leases_dir) == [], "leased a second time"
    kernel.communicate("go\n", timeout=60)


def test_a_project_without_gpus_sees_none_and_leases_off_change_nothing(
    gate, fake_nvml: FakeNvml, leases_dir: Path
) -> None:
    (gate.project / "pyproject.toml").write_text(
        '[project]\nname = "demo"\n\n[tool.labshare]\ngpus = 0\n'
    )
    kernel = gate()
    assert (
        told(kernel) == {"pid": kernel.pid, "cuda": "", "order": "PCI_BUS_ID"}
        and held(leases_dir) == []
    )
    kernel.communicate("go\n", timeout=60)

    gate.site.write_text('[gpus]\nassign = "off"\n')
    kernel = gate()
    assert (
        told(kernel) == {"pid": kernel.pid, "cuda": None, "order": None} and held(leases_dir) == []
    )


# ---------------------------------------------------------------- end to end, real clients


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A venv with nbclient and jupyter_client and nothing of labshare's: what papermill or VS Code brings.

    Made with the uv labshare ships, from its warm cache when it can (no network), else the index.
    """
    where = Path(str(tmp_path_factory.mktemp("client"))) / "venv"
    uv = str(BIN / "uv")
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(where)], check=True)
    install = [
        uv,
        "pip",
        "install",
        "-q",
        "--python",
        str(where / "bin" / "python"),
        "nbclient",
        "jupyter_client",
    ]
    if subprocess.run([*install, "--offline"], capture_output=True).returncode != 0:
        subprocess.run(install, check=True, timeout=600)
    os.chmod(where.parent, 0o755)
    assert not (where / "bin" / "labshare").exists()
    assert subprocess.run(
        [str(where / "bin" / "python"), "-c", "import labshare"], capture_output=True
    ).returncode
    yield where
    shutil.rmtree(where, ignore_errors=True)


CELL = """import json, os
with open({out!r} + ".new", "w") as f:
    json.dump({{"pid": os.getpid(), "environ": open(f"/proc/{{os.getpid()}}/environ").read()}}, f)
os.replace({out!r} + ".new", {out!r})
open({go!r}).read()
"""


def notebook(path: Path, source: str) -> Path:
    path.write_text(
        json.dumps(
            {
                "cells": [
                    {
                        "cell_type": "code",
                        "execution_count": None,
                        "id": "gate",
                        "metadata": {},
                        "outputs": [],
                        "source": source,
                    }
                ],
                "metadata": {},
                "nbformat": 4,
                "nbformat_minor": 5,
            }
        )
    )
    return path


def let_go(fifo: Path) -> None:
    """Write to the fifo the cell waits on, once it does (never blocking on a reader that is not there)."""
    fd = wait_for(
        lambda: os.open(fifo, os.O_WRONLY | os.O_NONBLOCK),
        ignoring=(OSError,),
        what="the cell to wait",
    )
    os.write(fd, b"go")
    os.close(fd)


def lease_rows(member: Member) -> list[dict]:
    return [row for card in member.json("gpus")["cards"] for row in card["leases"]]


def test_jupyter_execute_without_labshare_runs_a_project_kernel_under_a_lease(
    member: Member, client_venv: Path, fake_nvml: FakeNvml, leases_dir: Path, shared_tmp: Path
) -> None:
    fake_nvml.cards = fake_nvml.cards[:1]
    fake_nvml.write()
    member.extra_env.update(
        {
            "LABSHARE_SITE_CONFIG": str(leased_site(shared_tmp, leases_dir)),
            "UV_PYTHON_DOWNLOADS": "never",
            **fake_nvml.env,
        }
    )
    made = member.json("env", "create", "demo", timeout=600)
    out, go = member.home / "told.json", member.home / "go"
    os.mkfifo(go)
    page = notebook(member.home / "wait.ipynb", CELL.format(out=str(out), go=str(go)))
    execute = [
        str(client_venv / "bin" / "jupyter-execute"),
        f"--kernel_name={made['name']}",
        str(page),
    ]

    run = member.popen(execute, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(
            lambda: out.exists() or run.poll() is not None,
            timeout=180,
            what="the notebook's cell to run",
        )
        assert out.exists(), run.communicate()[1]
        kernel = json.loads(out.read_text())
        kernel_env = dict(i.split("=", 1) for i in kernel["environ"].split("\0") if "=" in i)
        (row,) = lease_rows(member)
        assert (row["pid"], row["client"], row["label"], row["stale"]) == (
            kernel["pid"],
            "jupyter-execute",
            "demo",
            None,
        )
        assert (kernel_env["CUDA_VISIBLE_DEVICES"], kernel_env["CUDA_DEVICE_ORDER"]) == (
            row["card"],
            "PCI_BUS_ID",
        )
        assert (
            unwrap(psutil.Process(kernel["pid"]).cmdline())
            == psutil.Process(kernel["pid"]).cmdline()
        )

        second = member.run_cmd(
            execute, timeout=180
        )  # the only card is held: refused, with the sentence
        assert second.returncode != 0
        assert re.search(REFUSED.format(user=re.escape(member.name)), second.stderr), second.stderr[
            -2000:
        ]
        assert [r["pid"] for r in lease_rows(member)] == [kernel["pid"]]

        let_go(go)  # the cell's wait ends; so does the run
        assert run.wait(180) == 0, run.communicate()[1]
    finally:
        run.kill()
        run.communicate()
    wait_for(lambda: lease_rows(member) == [], what="the lease to go with the kernel")


def test_a_kernel_of_the_lab_server_holds_one_lease_never_two(
    member: Member, fake_nvml: FakeNvml, leases_dir: Path, shared_tmp: Path
) -> None:
    project = member.home / "proj"
    (project / ".venv" / "bin").mkdir(parents=True)
    spec = render(
        Target(
            project=project,
            env=project / ".venv",
            python=Path(sys.executable),
            python_version="3",
            manager="uv",
            label="proj",
        ),
        "proj",
    )
    assert Gated.of(spec["argv"]) is not None
    folder = member.home / ".local/share/jupyter/kernels/labshare-proj"
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text(json.dumps(spec))
    member.extra_env.update(
        {"LABSHARE_SITE_CONFIG": str(leased_site(shared_tmp, leases_dir)), **fake_nvml.env}
    )
    member.run("start", check=True)
    kernel = lab_of(member).start_kernel("labshare-proj")
    pid = kernel_pid(member, kernel)
    # Counted once the kernel itself runs: a gate would have leased by then, before its exec.
    wait_for(
        lambda: psutil.Process(pid).cmdline()[1:3] == ["-m", "ipykernel_launcher"],
        what="the kernel to run",
    )
    (lease,) = held(leases_dir)
    assert (lease.kernel_id, lease.pid, lease.client) == (kernel, pid, None)
    assert environ(pid)["CUDA_VISIBLE_DEVICES"] == lease.card
    assert not [
        p for p in member.processes() if MODULE in " ".join(p.cmdline())
    ]  # no gate, so no watcher
