"""`labshare env …` and `labshare kernels prune` with real uv, real kernelspecs and real kernels."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import BIN, LABSHARE, Member
from jupyter_api import Lab

from labshare import probe
from labshare.gpus.gate import unwrap

SPEC_NAME = re.compile(r"^labshare-[a-z0-9-]+-[0-9a-f]{8}$")

# Runs as the member (its HOME, so its Jupyter data dir): start every kernel at once, run CODE in each,
# print their outputs; one at a time, twenty fresh environments took minutes on a loaded 2-core CI machine.
# Over IPC: twenty kernels taking free TCP ports at once, beside a whole suite's listeners, now and then
# lose one to another process (a kernel that dies binding it, seen on CI); a socket file is never taken.
# Every kernel is waited for, so a failed one leaves no other running (and holding this probe's pipes).
KERNEL_PROBE = r"""
import asyncio, json, os, shutil, sys, tempfile, time
from jupyter_client import AsyncKernelManager

sockets = tempfile.mkdtemp(prefix="k")  # short: a socket's path holds 107 bytes at most

async def run(i, name, code):
    km = AsyncKernelManager(kernel_name=name, transport="ipc", ip=os.path.join(sockets, str(i)))
    chunks = []
    def hook(msg):
        if msg["msg_type"] == "stream":
            chunks.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            chunks.append("ERROR " + msg["content"]["ename"] + ": " + msg["content"]["evalue"])
    try:
        await km.start_kernel()
        kc = km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=240)
            print(f"{name} ready after {time.monotonic() - began:.1f} s", file=sys.stderr)
            await kc.execute_interactive(code, output_hook=hook, timeout=240)
            print(f"{name} answered after {time.monotonic() - began:.1f} s", file=sys.stderr)
            return "".join(chunks)
        finally:
            kc.stop_channels()
    finally:
        if km.has_kernel:
            await km.shutdown_kernel(now=True)

began = time.monotonic()

async def main(code, names):
    outputs = await asyncio.gather(*(run(i, n, code) for i, n in enumerate(names)), return_exceptions=True)
    failed = [f"{n}: {type(o).__name__}: {o}" for n, o in zip(names, outputs) if isinstance(o, BaseException)]
    if failed:
        sys.exit("kernels that failed: " + "; ".join(failed))
    print(json.dumps(dict(zip(names, outputs))))

try:
    asyncio.run(main(sys.argv[1], sys.argv[2:]))
finally:
    shutil.rmtree(sockets, ignore_errors=True)
"""
WHERE = "import sys; print(sys.prefix)\n!which python"


@pytest.fixture
def lab(member: Member) -> Member:
    """A member whose uv (sharing the tests' warm cache, as every member does) never downloads a Python."""
    member.extra_env["UV_PYTHON_DOWNLOADS"] = "never"
    return member


def kernels_dir(m: Member) -> Path:
    return m.home / ".local/share/jupyter/kernels"


def create(m: Member, *args: str) -> dict:
    done = m.run("env", "create", *args, "--json", timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def run_in_kernels(
    m: Member, names: list[str], code: str = WHERE, timeout: float = 240
) -> dict[str, str]:
    """CODE's output in each kernel; past `timeout`, a failure that says which kernels had answered."""
    try:
        done = m.run_cmd([sys.executable, "-c", KERNEL_PROBE, code, *names], timeout=timeout)
    except subprocess.TimeoutExpired as late:
        said = late.stderr.decode() if isinstance(late.stderr, bytes) else late.stderr or ""
    else:
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])
    pytest.fail(
        f"{len(names)} kernels had not all answered after {timeout:.0f} s; the probe said:\n{said}"
    )


def listing(m: Member) -> dict[str, dict]:
    done = m.run("env", "list", "--json")
    assert done.returncode == 0, done.stderr
    return {e["name"]: e for e in json.loads(done.stdout)}


def write_foreign_spec(directory: Path, name: str, python: str, display: str) -> Path:
    spec_dir = directory / name
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": display,
                "language": "python",
            }
        )
    )
    return spec_dir


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_two_projects_with_one_name_get_two_kernels_that_run_in_their_own_env(lab: Member) -> None:
    a = create(lab, "analysis", "--path", str(lab.home / "thesis" / "analysis"))
    b = create(lab, "analysis", "--path", str(lab.home / "course" / "analysis"))
    assert a["name"] != b["name"] and SPEC_NAME.match(a["name"]) and SPEC_NAME.match(b["name"])
    assert a["display_name"] == "analysis (Python 3.11)"  # alone when made

    real = subprocess.run(
        [str(BIN / "jupyter"), "kernelspec", "list", "--json"],
        env=lab.env,
        capture_output=True,
        text=True,
        check=True,
    )
    specs = json.loads(real.stdout)["kernelspecs"]
    assert a["name"] in specs and b["name"] in specs
    shown = {specs[n]["spec"]["display_name"] for n in (a["name"], b["name"])}
    assert shown == {"thesis/analysis (Python 3.11)", "course/analysis (Python 3.11)"}
    for n in (a["name"], b["name"]):
        spec = specs[n]["spec"]
        assert unwrap(spec["argv"])[1:5] == [
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
        ]  # behind the gate
        meta = spec["metadata"]["labshare"]
        assert {"project", "env", "manager", "python", "schema"} <= set(meta)
        assert spec["env"]["VIRTUAL_ENV"] == meta["env"] and spec["env"]["PATH"].startswith(
            meta["env"] + "/bin:"
        )

    out = run_in_kernels(lab, [a["name"], b["name"]])
    for r in (a, b):
        venv = Path(r["project"]) / ".venv"
        prefix, which = out[r["name"]].split()
        assert os.path.realpath(prefix) == os.path.realpath(venv)
        assert which == str(venv / "bin" / "python")


def test_running_server_starts_a_kernel_made_after_it(lab: Member) -> None:
    lab.run("start", check=True)
    made = create(lab, "later")
    info = lab.json("info")
    server = Lab(probe.Address(socket=info["socket"], port=info["port"]), info["token"])
    specs = server.ok("GET", "/api/kernelspecs")["kernelspecs"]
    assert made["name"] in specs
    kernel = server.start_kernel(made["name"])
    prefix = server.execute(kernel, "import sys; print(sys.prefix)").strip()
    assert os.path.realpath(prefix) == os.path.realpath(Path(made["project"]) / ".venv")


def test_deleted_venv_is_stale_and_prune_removes_only_it(lab: Member) -> None:
    gone = create(lab, "gone")
    kept = create(lab, "kept")
    foreign_ok = write_foreign_spec(kernels_dir(lab), "handmade", "/usr/bin/python3", "Hand made")
    foreign_stale = write_foreign_spec(
        kernels_dir(lab), "oldrye", "/nonexistent/bin/python", "Python (Rye)"
    )
    shutil.rmtree(Path(gone["project"]) / ".venv")

    seen = listing(lab)
    assert seen[gone["name"]]["status"] == "stale" and seen[gone["name"]]["owner"] == "labshare"
    assert seen[kept["name"]]["status"] == "ok"
    assert seen["handmade"]["owner"] == "foreign" and seen["handmade"]["status"] == "ok"
    assert seen["oldrye"]["status"] == "stale" and seen["oldrye"]["owner"] == "foreign"
    for entry in seen.values():
        assert {"name", "display_name", "project", "python", "status", "owner"} <= set(entry)

    asked = lab.run("kernels", "prune")  # no terminal, no --yes: asks, cannot, removes nothing
    assert asked.returncode != 0 and "--yes" in asked.stderr
    assert (kernels_dir(lab) / gone["name"]).is_dir()

    done = lab.run("kernels", "prune", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert [e["name"] for e in result["removed"]] == [gone["name"]]
    assert result["stale_foreign_kept"] == ["oldrye"]
    assert sorted(p.name for p in kernels_dir(lab).iterdir()) == sorted(
        [kept["name"], "handmade", "oldrye"]
    )
    assert foreign_ok.is_dir() and foreign_stale.is_dir()
    assert Path(gone["project"], "pyproject.toml").is_file()  # the project's files are never pruned

    done = lab.run("kernels", "prune", "--yes", "--foreign", "--json")
    assert [e["name"] for e in json.loads(done.stdout)["removed"]] == ["oldrye"]
    assert foreign_ok.is_dir() and (kernels_dir(lab) / kept["name"]).is_dir()


RYE_PYPROJECT = """\
[project]
name = "ryeproj"
version = "0.1.0"
description = "made by rye init --virtual"
requires-python = ">=3.10"
dependencies = []

[tool.rye]
managed = true
virtual = true
# tools for the tests
dev-dependencies = ["pytest"]

[tool.other]
keep = "me"
"""


def test_adopt_rye_project_moves_dev_dependencies_and_installs_them(lab: Member) -> None:
    project = lab.home / "projects" / "ryeproj"
    project.mkdir(parents=True)
    (project / "pyproject.toml").write_text(RYE_PYPROJECT)
    old = write_foreign_spec(
        kernels_dir(lab),
        "my_project",
        str(project / ".venv/bin/python"),
        "Python (Rye - my_project)",
    )

    asked = lab.run("env", "adopt", str(project))
    assert asked.returncode != 0 and "--yes" in asked.stderr
    assert "+[dependency-groups]" in asked.stderr and "-dev-dependencies" in asked.stderr
    assert (project / "pyproject.toml").read_text() == RYE_PYPROJECT and not (
        project / ".venv"
    ).exists()

    done = lab.run("env", "adopt", str(project), "--yes", "--json", timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (
        result["manager"] == "rye"
        and result["replaced_specs"] == ["my_project"]
        and not old.exists()
    )

    import tomllib

    data = tomllib.loads((project / "pyproject.toml").read_text())
    assert "dev-dependencies" not in data["tool"]["rye"]
    assert data["tool"]["rye"] == {"managed": True, "virtual": True} and data["tool"]["other"] == {
        "keep": "me"
    }
    assert "pytest" in data["dependency-groups"]["dev"]
    assert any(d.startswith("ipykernel") for d in data["dependency-groups"]["dev"])
    python = project / ".venv" / "bin" / "python"
    check = lab.run_cmd([str(python), "-c", "import pytest, ipykernel; print(pytest.__version__)"])
    assert check.returncode == 0, check.stderr
    assert run_in_kernels(lab, [result["name"]])[result["name"]].split()[0] == str(
        project / ".venv"
    )


@pytest.mark.slow
def test_twenty_parallel_creates_make_twenty_working_kernels(lab: Member) -> None:
    budget = 270.0  # inside pytest-timeout's 300 s, so a miss says which step was late
    ends = time.monotonic() + budget

    def left() -> float:
        return max(1.0, ends - time.monotonic())

    create(lab, "warmup")  # fills the uv cache once, as a member's second create would find it
    procs = [
        subprocess.Popen(
            [LABSHARE, "env", "create", f"p{i:02d}", "--json"],
            env=lab.env,
            cwd=lab.home,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        for i in range(20)
    ]
    results = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=left())
        except subprocess.TimeoutExpired:
            pytest.fail(f"only {len(results)} of 20 creates had finished after {budget:.0f} s")
        assert p.returncode == 0, err
        results.append(json.loads(out))
    names = {r["name"] for r in results}
    assert len(names) == 20 and len({r["display_name"] for r in results}) == 20
    out = run_in_kernels(lab, sorted(names), "import sys; print(sys.prefix)", timeout=left())
    for r in results:
        assert os.path.realpath(out[r["name"]].strip()) == os.path.realpath(
            Path(r["project"]) / ".venv"
        )


@pytest.mark.parametrize("name", ["bad/name", "..", "-flag", "a b", "x" * 80, "ünï"])
def test_invalid_names_are_refused_without_side_effects(lab: Member, name: str) -> None:
    done = lab.run("env", "create", "--", name)
    assert done.returncode != 0
    assert done.stderr.count("labshare: error:") == 1 and "Traceback" not in done.stderr
    assert not kernels_dir(lab).exists() and not (lab.home / "projects").exists()


def test_bad_paths_and_failing_uv_leave_nothing_behind(lab: Member) -> None:
    afile = lab.home / "notes.txt"
    afile.write_text("mine\n")
    done = lab.run("env", "create", "x", "--path", str(afile))
    assert done.returncode != 0 and "is a file" in done.stderr and afile.read_text() == "mine\n"

    done = lab.run("env", "adopt", str(afile))
    assert done.returncode != 0 and "is a file" in done.stderr

    empty = lab.home / "empty"
    empty.mkdir()
    (empty / "data.csv").write_text("1,2\n")
    done = lab.run("env", "adopt", str(empty))
    assert done.returncode != 0 and "No Python project" in done.stderr
    assert done.stderr.count("labshare: error:") == 1

    before = snapshot(empty)
    done = lab.run(
        "env", "create", "broken", "--path", str(empty), "no-such-package-labshare-test-zz"
    )
    assert done.returncode != 0 and "uv add" in done.stderr
    assert snapshot(empty) == before and sorted(os.listdir(empty)) == ["data.csv"]

    done = lab.run("env", "create", "broken2", "no-such-package-labshare-test-zz")
    assert done.returncode != 0
    assert not (lab.home / "projects").exists()
    assert not kernels_dir(lab).exists() or list(kernels_dir(lab).iterdir()) == []
    assert lab.run("env", "create", "ok", "--env", "NOPE").returncode != 0


def test_env_option_is_kept_in_pyproject_and_rerendered(lab: Member) -> None:
    made = create(lab, "gpu", "--env", "CUDA_VISIBLE_DEVICES=0")
    spec = json.loads((Path(made["spec_dir"]) / "kernel.json").read_text())
    assert spec["env"]["CUDA_VISIBLE_DEVICES"] == "0"
    pyproject = Path(made["project"]) / "pyproject.toml"
    assert 'env = { CUDA_VISIBLE_DEVICES = "0" }' in pyproject.read_text()

    pyproject.write_text(pyproject.read_text().replace('"0"', '"1"'))
    again = lab.run(
        "env", "adopt", made["project"], "--env", "OMP_NUM_THREADS=4", "--yes", "--json"
    )
    assert again.returncode == 0, again.stderr
    assert (
        json.loads(again.stdout)["name"] == made["name"]
    )  # same project, same spec, updated in place
    spec = json.loads((Path(made["spec_dir"]) / "kernel.json").read_text())
    assert spec["env"]["CUDA_VISIBLE_DEVICES"] == "1" and spec["env"]["OMP_NUM_THREADS"] == "4"
    out = run_in_kernels(
        lab, [made["name"]], "import os; print(os.environ['CUDA_VISIBLE_DEVICES'])"
    )
    assert out[made["name"]].strip() == "1"


def test_remove_unregisters_and_deletes_files_only_when_asked(lab: Member) -> None:
    a = create(lab, "twin", "--path", str(lab.home / "a" / "twin"))
    b = create(lab, "twin", "--path", str(lab.home / "b" / "twin"))
    ambiguous = lab.run("env", "remove", "twin")
    assert ambiguous.returncode != 0 and "2 kernels" in ambiguous.stderr

    done = lab.run("env", "remove", a["project"], "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["deleted_files"] is False
    assert Path(a["project"], "pyproject.toml").is_file() and not Path(a["spec_dir"]).exists()
    assert (
        listing(lab)[b["name"]]["display_name"] == "twin (Python 3.11)"
    )  # no longer needs its path

    refused = lab.run("env", "remove", b["name"], "--delete-files")
    assert refused.returncode != 0 and Path(b["project"]).is_dir() and Path(b["spec_dir"]).is_dir()
    done = lab.run("env", "remove", b["name"], "--delete-files", "--yes")
    assert done.returncode == 0, done.stderr
    assert not Path(b["project"]).exists() and not Path(b["spec_dir"]).exists()


def test_adopt_plain_venv_offers_ipykernel_and_registers_it(lab: Member) -> None:
    project = lab.home / "oldstyle"
    project.mkdir()
    uv = subprocess.run(
        [sys.executable, "-c", "import uv; print(uv.find_uv_bin())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    lab.run_cmd([uv, "venv", "--python", "/usr/bin/python3", str(project / "venv")], check=True)
    refused = lab.run("env", "adopt", str(project))
    assert (
        refused.returncode != 0 and "ipykernel" in refused.stderr and not kernels_dir(lab).exists()
    )

    done = lab.run("env", "adopt", str(project), "--yes", "--json", timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["manager"] == "venv" and result["installed"] == ["ipykernel"]
    assert not (project / "pyproject.toml").exists()
    assert run_in_kernels(lab, [result["name"]])[result["name"]].split()[0] == str(project / "venv")


def test_failed_adopt_restores_the_project_exactly(lab: Member) -> None:
    project = lab.home / "projects" / "ryebad"
    project.mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        RYE_PYPROJECT.replace('"pytest"', '"no-such-package-labshare-test-zz"').replace(
            "ryeproj", "ryebad"
        )
    )
    (project / "notebook.ipynb").write_text("{}")
    before = snapshot(project)
    done = lab.run("env", "adopt", str(project), "--yes", timeout=600)
    assert done.returncode != 0 and done.stderr.count("labshare: error:") == 1
    assert "uv sync" in done.stderr or "uv add" in done.stderr
    assert snapshot(project) == before and sorted(os.listdir(project)) == [
        "notebook.ipynb",
        "pyproject.toml",
    ]
    assert not kernels_dir(lab).exists() or list(kernels_dir(lab).iterdir()) == []
