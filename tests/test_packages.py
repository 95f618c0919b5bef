"""Packages the way a member adds them: `%pip install`, `!uv add`, `uv sync`, in real kernels of a real server.

The member's PATH is the bare `/usr/bin:/bin` of a fresh account, which has
no uv: what the kernels and the Lab's terminals run is the uv labshare ships.
The packages are wheels made here and found through `UV_FIND_LINKS` (as a
lab's own index would be), so none of them comes from the network.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import psutil
import pytest
import tomllib
from conftest import Member, lab_of
from jupyter_api import plain
from test_default_kernel import default_env, tiny_wheel, user_kernels
from test_envs import create, lab

from labshare.envs import kerneltools
from labshare.kernelside import labshare_packages as ext
from labshare.server import launch

BARE_PATH = "/usr/bin:/bin"


def tools(m: Member) -> kerneltools.KernelTools:
    return kerneltools.KernelTools.of(m.home / ".local/share")


@pytest.fixture
def bare(lab: Member, shared_tmp: Path) -> Member:
    """A member with no uv on PATH and three local packages, alpha, beta and gamma, to install."""
    wheels = shared_tmp / "wheels"
    wheels.mkdir()
    for name in ("ls_alpha", "ls_beta", "ls_gamma"):
        tiny_wheel(wheels, name)
    lab.extra_env.update({"PATH": BARE_PATH, "UV_FIND_LINKS": str(wheels)})
    return lab


def imported_from(server, kernel: str, *modules: str) -> list[Path]:
    code = "; ".join(f"import {m}; print({m}.WHERE)" for m in modules)
    return [Path(line) for line in server.execute(kernel, code).split()]


def dependencies(project: Path) -> list[str]:
    return tomllib.loads((project / "pyproject.toml").read_text())["project"]["dependencies"]


# ---------------------------------------------------------------- in real kernels


@pytest.mark.slow
def test_pip_and_uv_add_in_a_uv_project_are_recorded_and_survive_uv_sync(bare: Member) -> None:
    made = create(bare, "demo")
    project, env = Path(made["project"]), Path(made["env"])
    assert bare.run("start").returncode == 0
    server = lab_of(bare)
    kernel = server.start_kernel(made["name"])

    out = server.execute(kernel, "%pip install ls-alpha", timeout=300)
    assert f"recorded in {project / 'pyproject.toml'} and uv.lock" in out, out
    assert "VIRTUAL_ENV" not in out, out  # uv's warning when the kernel's env is not the project's
    assert imported_from(server, kernel, "ls_alpha")[0].is_relative_to(env)
    server.execute(
        kernel, "import os; os.chdir('/')"
    )  # `!uv add` anywhere changes the kernel's project
    out = server.execute(kernel, "!uv add ls-beta", timeout=300)
    assert "+ ls-beta==1.0" in plain(out), out
    assert imported_from(server, kernel, "ls_beta")[0].is_relative_to(env)
    assert {"ls-alpha>=1.0", "ls-beta>=1.0"} <= set(dependencies(project))
    lock = (project / "uv.lock").read_text()
    assert 'name = "ls-alpha"' in lock and 'name = "ls-beta"' in lock

    # A Lab terminal: the server's PATH ends with the member's uv-only folder, since PATH had no uv.
    jupyter_path = psutil.Process(bare.state().pid).environ()["PATH"]
    assert jupyter_path == f"{BARE_PATH}:{tools(bare).bin_dir}"
    synced = bare.run_cmd(["uv", "sync"], cwd=str(project), env={"PATH": jupyter_path}, timeout=300)
    assert synced.returncode == 0, synced.stderr
    fresh = server.start_kernel(made["name"])
    assert all(p.is_relative_to(env) for p in imported_from(server, fresh, "ls_alpha", "ls_beta"))

    out = server.execute(fresh, "%pip uninstall -y ls-alpha", timeout=300)
    assert "ls-alpha" not in " ".join(dependencies(project)) and "removed from" in out, out


@pytest.mark.slow
def test_pip_in_an_adopted_venv_and_the_default_kernel_changes_only_that_environment(
    bare: Member,
) -> None:
    folder = bare.home / "projects" / "plain"
    folder.mkdir(parents=True)
    uv = str(tools(bare).bin_dir / "uv")
    assert bare.run("start").returncode == 0  # makes the default kernel and the uv links
    bare.run_cmd(
        [uv, "venv", "--python", sys.executable, str(folder / ".venv")], check=True, timeout=300
    )
    bare.run_cmd(
        [uv, "pip", "install", "--python", str(folder / ".venv/bin/python"), "ipykernel"],
        check=True,
        timeout=300,
    )
    adopted = bare.json("env", "adopt", str(folder), "--yes", timeout=300)
    server = lab_of(bare)

    for name, env, package in (
        (adopted["name"], folder / ".venv", "ls_gamma"),
        ("python3", default_env(bare), "ls_alpha"),
    ):
        kernel = server.start_kernel(name)
        out = server.execute(kernel, f"%pip install {package.replace('_', '-')}", timeout=300)
        assert f"changed {env} only" in out, out
        assert imported_from(server, kernel, package)[0].is_relative_to(env)
    assert not (folder / "pyproject.toml").exists()


# ---------------------------------------------------------------- older kernelspecs


def test_start_brings_labshares_older_kernelspecs_up_to_date_and_leaves_others_alone(
    bare: Member,
) -> None:
    project = bare.home / "projects" / "old"
    (project / ".venv" / "bin").mkdir(parents=True)
    (project / ".venv" / "bin" / "python").symlink_to(sys.executable)
    (project / "pyproject.toml").write_text('[project]\nname = "old"\nversion = "0"\n')
    env = project / ".venv"
    old = {
        "argv": [str(env / "bin/python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "old (Python 3.11)",
        "language": "python",
        "interrupt_mode": "signal",
        "env": {"VIRTUAL_ENV": str(env), "PATH": f"{env}/bin:${{PATH}}", "MINE": "1"},
        "metadata": {
            "debugger": True,
            "labshare": {
                "schema": 1,
                "project": str(project),
                "label": "old",
                "env": str(env),
                "manager": "uv",
                "python": str(env / "bin/python"),
                "python_version": "3.11.2",
                "extra_env": {"MINE": "1"},
            },
        },
    }
    foreign = {
        "argv": ["/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "theirs",
        "language": "python",
        "env": {"PATH": "/x:${PATH}"},
    }
    for name, spec in (("labshare-old-00000000", old), ("theirs", foreign)):
        (user_kernels(bare) / name).mkdir(parents=True)
        (user_kernels(bare) / name / "kernel.json").write_text(json.dumps(spec))

    done = bare.run("start")
    assert done.returncode == 0, done.stderr
    assert "Updated 1 kernel(s)" in done.stdout and "labshare-old-00000000" in done.stdout, (
        done.stdout
    )
    new = json.loads((user_kernels(bare) / "labshare-old-00000000" / "kernel.json").read_text())
    assert new["metadata"]["labshare"]["schema"] > 1 and new["display_name"] == "old (Python 3.11)"
    assert new["env"]["UV_PROJECT"] == str(project) and new["env"]["MINE"] == "1"
    assert new["env"]["PATH"] == f"{env}/bin:${{PATH}}:{tools(bare).bin_dir}"
    assert new["argv"][-1] == f"--IPKernelApp.exec_files={tools(bare).loader}"
    assert json.loads((user_kernels(bare) / "theirs" / "kernel.json").read_text()) == foreign
    again = bare.run("start")
    assert "Updated" not in again.stdout, again.stdout

    # A server already running may be an older labshare's, whose Lab would lease a gated spec a second
    # time: its specs stay as they are until the restart that the release note asks for.
    spec_file = user_kernels(bare) / "labshare-old-00000000" / "kernel.json"
    spec_file.write_text(json.dumps(old))
    running = bare.run("start")
    assert "Updated" not in running.stdout and json.loads(spec_file.read_text()) == old, (
        running.stdout
    )
    restarted = bare.run("restart")
    assert restarted.returncode == 0, restarted.stderr
    assert json.loads(spec_file.read_text())["metadata"]["labshare"]["schema"] > 1


# ---------------------------------------------------------------- the parts, without a server


@pytest.mark.quick
def test_pip_means_uv_add_only_where_the_kernel_is_its_uv_projects_environment(
    tmp_path: Path, monkeypatch
) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    monkeypatch.setattr(sys, "prefix", str(tmp_path / ".venv"))
    monkeypatch.setenv("UV_PROJECT", str(tmp_path))
    monkeypatch.delenv("UV_PROJECT_ENVIRONMENT", raising=False)
    assert ext.uv_project() == tmp_path
    assert ext.plan(["install", "-r", "req.txt"], tmp_path)[0] == ["add", "-r", "req.txt"]
    assert ext.plan(["uninstall", "-y", "x"], tmp_path)[0] == ["remove", "x"]
    assert ext.plan(["list"], tmp_path) == (["pip", "list", "--python", sys.executable], "")
    monkeypatch.setenv("UV_PROJECT_ENVIRONMENT", str(tmp_path / "elsewhere"))
    assert ext.uv_project() is None  # uv would install somewhere this kernel does not import from
    args, said = ext.plan(["install", "x"], None)
    assert args == ["pip", "install", "--python", sys.executable, "x"] and "only" in said


@pytest.mark.quick
def test_kernel_env_names_the_project_for_uv_and_the_servers_path_gets_uv_only_when_it_has_none(
    tmp_path: Path,
) -> None:
    kt = kerneltools.KernelTools.of(tmp_path)
    (tmp_path / "p").mkdir()
    assert (
        kt.kernel_env(tmp_path / "p", tmp_path / "p/.venv", "uv") == {}
    )  # no pyproject: not a uv project
    (tmp_path / "p/pyproject.toml").write_text("")
    assert kt.kernel_env(tmp_path / "p", tmp_path / "p/.venv", "uv") == {
        "UV_PROJECT": str(tmp_path / "p")
    }
    assert kt.kernel_env(tmp_path / "p", tmp_path / "e", "rye")["UV_PROJECT_ENVIRONMENT"] == str(
        tmp_path / "e"
    )
    assert kt.kernel_env(tmp_path / "p", tmp_path / "p/.venv", "poetry") == {}
    kt.ensure()
    kt.ensure()  # twice is fine
    assert sorted(p.name for p in kt.bin_dir.iterdir()) == ["uv", "uvx"]
    trusted = {"UV_NATIVE_TLS": "0"}  # the member's own choice stays
    assert launch.tools_env({"PATH": "/usr/bin", **trusted}, kt.bin_dir) == {
        "PATH": f"/usr/bin:{kt.bin_dir}"
    }
    assert launch.tools_env({"PATH": str(kt.bin_dir), **trusted}, tmp_path / "x") == {}
    assert launch.tools_env({"PATH": str(kt.bin_dir)}, tmp_path / "x") == {"UV_SYSTEM_CERTS": "1"}
