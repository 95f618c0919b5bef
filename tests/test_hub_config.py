"""`labshare hub-config`: the export checked by JupyterHub's own loader, batchspawner, YAML, and a booted hub."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from conftest import BIN, UV_CACHE, free_port, site_file

from labshare.hub.facts import members_with_state

SCOPES = {"list:users", "read:users:activity", "read:servers", "delete:servers"}


def hub_config(
    site: Path,
    *args: str,
    env: dict[str, str] | None = None,
    python_bin: Path = BIN,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `labshare hub-config ARGS` as root, the admin, against `site`."""
    full = {
        "PATH": f"{python_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "LABSHARE_SITE_CONFIG": str(site),
        **(env or {}),
    }
    return subprocess.run(
        [str(python_bin / "labshare"), "hub-config", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=300,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


def load(path: Path):
    """The config exactly as `jupyterhub -f path` sees it."""
    from jupyterhub.app import JupyterHub

    app = JupyterHub()
    app.load_config_file(str(path))
    return app.config


def fake_user(name: str, groups: list[str]) -> SimpleNamespace:
    """Only what a spawner reads before it starts anything: a name, an id, JupyterHub groups."""
    return SimpleNamespace(
        name=name,
        id=1,
        groups=[SimpleNamespace(name=g) for g in groups],
        url=f"/user/{name}/",
        escaped_name=name,
        server=None,
        settings={},
        orm_user=None,
    )


def lab_site(tmp: Path, alice: str, bob: str, group: str, **hub: str) -> Path:
    extra = "".join(f"{k} = {v}\n" for k, v in hub.items())
    return site_file(
        tmp,
        f"""
[server]
cull_idle_kernels_after = "3h"
[users.{alice}]
memory_max = "64G"
cpus = 8
gpus = [0, 1]
[groups.{group}]
memory_max = "16G"
[admin]
users = ["{alice}"]
[hub]
{extra}[hub.slurm]
partition = "gpu"
runtime = "12:00:00"
account = "lab42"
cpus = 2
""",
    )


def root_only_site(tmp: Path, **hub: str) -> Path:
    """A site whose one member is root, whom every host has: for what needs no member of its own."""
    extra = "".join(f"{k} = {v}\n" for k, v in hub.items())
    return site_file(tmp, f'[admin]\nusers = ["root"]\n[hub]\n{extra}')


@pytest.fixture
def lab(make_user, tmp_path: Path) -> SimpleNamespace:
    """Two real accounts: alice is named in [users], bob only through a Unix group in [groups]."""
    alice, bob = make_user(), make_user()
    group = f"lsg{uuid.uuid4().hex[:6]}"
    subprocess.run(["groupadd", group], check=True)
    subprocess.run(["usermod", "-aG", group, bob.name], check=True)
    try:
        yield SimpleNamespace(
            alice=alice,
            bob=bob,
            group=group,
            site=lab_site(tmp_path, alice.name, bob.name, group),
            # accounts of this host that use labshare already (a person trying it): members too
            elsewhere=set(members_with_state(socket.gethostname())),
        )
    finally:
        subprocess.run(["groupdel", group], capture_output=True)


@pytest.mark.alone
def test_systemd_config_loads_with_jupyterhubs_loader_and_gives_each_member_their_limits(
    lab, tmp_path: Path
) -> None:
    out = tmp_path / "jupyterhub_config.py"
    done = hub_config(lab.site, "--spawner", "systemd", "-o", str(out), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["written_to"] == str(out) and set(report["members"]) - lab.elsewhere == {
        lab.alice.name,
        lab.bob.name,
    }

    cfg = load(out)
    assert cfg.JupyterHub.bind_url == "http://127.0.0.1:8000/"
    assert cfg.JupyterHub.spawner_class == "systemdspawner.SystemdSpawner"
    assert cfg.JupyterHub.cleanup_servers is False

    from jupyterhub.auth import PAMAuthenticator

    auth = PAMAuthenticator(config=cfg)
    assert auth.allowed_users - lab.elsewhere == {lab.alice.name, lab.bob.name}
    assert auth.admin_users == {lab.alice.name}
    assert auth.allowed_groups == {lab.group}

    from systemdspawner import SystemdSpawner

    def spawner_for(name: str) -> SystemdSpawner:
        groups = [g for g, spec in cfg.JupyterHub.load_groups.items() if name in spec["users"]]
        spawner = SystemdSpawner(config=cfg, user=fake_user(name, groups))
        asyncio.run(spawner.apply_group_overrides())
        return spawner

    a, b = spawner_for(lab.alice.name), spawner_for(lab.bob.name)
    assert a.mem_limit == 64 * 2**30 and a.cpu_limit == 8.0
    assert b.mem_limit == 16 * 2**30 and b.cpu_limit is None
    for s in (a, b):
        # labshare's server, which applies the site's GPU and culling rules itself when it starts
        assert s.cmd == [str(BIN / "labshare"), "singleuser"]
        assert s.environment == {"LABSHARE_SITE_CONFIG": str(lab.site)}
        assert s.default_url == "/lab" and s.notebook_dir == "~/projects"
        assert s.dynamic_users is False
    assert report["not_carried"] == []

    (culler,) = cfg.JupyterHub.services
    assert culler["name"] == "jupyterhub-idle-culler"
    assert culler["command"][:3] == [sys.executable, "-m", "jupyterhub_idle_culler"]
    assert "--timeout=86400" in culler["command"]  # a day, never TLJH's ten minutes
    (role,) = cfg.JupyterHub.load_roles
    assert set(role["scopes"]) == SCOPES and role["services"] == ["jupyterhub-idle-culler"]
    assert out.read_text().startswith("# labshare-generated")


def test_idle_timeout_and_bind_address_come_from_the_site_config(tmp_path: Path) -> None:
    site = root_only_site(tmp_path, ip='"10.1.2.3"', port="8443", idle_timeout='"3d"')
    done = hub_config(site, "--spawner", "systemd")
    assert done.returncode == 0, done.stderr
    path = tmp_path / "printed.py"
    path.write_text(done.stdout)
    cfg = load(path)
    assert cfg.JupyterHub.bind_url == "http://10.1.2.3:8443/"
    assert f"--timeout={3 * 86400}" in cfg.JupyterHub.services[0]["command"]


def test_slurm_config_renders_the_expected_sbatch_script(lab, tmp_path: Path) -> None:
    out = tmp_path / "slurm_config.py"
    done = hub_config(lab.site, "--spawner", "slurm", "-o", str(out))
    assert done.returncode == 0, done.stderr
    cfg = load(out)
    assert cfg.JupyterHub.spawner_class == "labshare.hub.slurm_spawner.LabshareSlurmSpawner"
    assert cfg.SlurmSpawner.exec_prefix == "/usr/sbin/runuser -u {username} --"
    assert cfg.SlurmSpawner.batchspawner_singleuser_cmd == str(BIN / "batchspawner-singleuser")

    from batchspawner import SlurmSpawner
    from batchspawner.batchspawner import format_template

    def script(name: str, groups: list[str]) -> str:
        # keepvars defaults to the hub's live environment; the script's resource lines do not need it.
        spawner = SlurmSpawner(config=cfg, user=fake_user(name, groups), req_keepvars="PATH")
        asyncio.run(spawner.apply_group_overrides())
        subvars = spawner.get_req_subvars()
        subvars["cmd"] = "jupyterhub-singleuser"
        return format_template(spawner.batch_script, **subvars)

    alice = script(lab.alice.name, [f"labshare-{lab.alice.name}"])
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --time=12:00:00",
        "#SBATCH --mem=64G",
        "#SBATCH --gres=gpu:2",
        "#SBATCH --cpus-per-task=8",
    ):
        assert line in alice.splitlines(), alice
    bob = script(lab.bob.name, [f"labshare-{lab.bob.name}"])
    assert (
        "#SBATCH --mem=16G" in bob.splitlines() and "#SBATCH --cpus-per-task=2" in bob.splitlines()
    )
    assert not any(line.startswith("#SBATCH --gres") for line in bob.splitlines())
    assert SlurmSpawner(config=cfg, user=fake_user(lab.bob.name, [])).req_account == "lab42"


@pytest.mark.alone
def test_kubernetes_values_parse_as_yaml_with_the_chart_keys(lab, tmp_path: Path) -> None:
    out = tmp_path / "values.yaml"
    done = hub_config(lab.site, "--spawner", "kubernetes", "-o", str(out))
    assert done.returncode == 0, done.stderr
    values = yaml.safe_load(out.read_text())
    config = values["hub"]["config"]
    allowed = set(config["Authenticator"]["allowed_users"])
    assert allowed - lab.elsewhere == {lab.alice.name, lab.bob.name}
    assert config["Authenticator"]["admin_users"] == [lab.alice.name]
    override = config["KubeSpawner"]["group_overrides"][f"labshare-{lab.alice.name}"][
        "spawner_override"
    ]
    assert (
        override["extra_resource_limits"] == {"nvidia.com/gpu": "2"}
        and override["mem_limit"] == "64G"
    )
    assert config["JupyterHub"]["load_groups"][f"labshare-{lab.alice.name}"] == {
        "users": [lab.alice.name]
    }
    assert values["singleuser"]["defaultUrl"] == "/lab"
    assert values["cull"] == {"enabled": True, "timeout": 86400, "every": 3600}
    assert values["proxy"]["service"]["type"] == "ClusterIP"


def test_no_site_config_is_one_clear_error(tmp_path: Path) -> None:
    done = hub_config(tmp_path / "absent.toml", "--spawner", "systemd")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(
        f"labshare: error: There is no site config at {tmp_path / 'absent.toml'}"
    )


def test_a_configured_user_without_an_account_is_named(tmp_path: Path) -> None:
    ghost = f"ghost{uuid.uuid4().hex[:6]}"
    site = site_file(tmp_path, f"[users.{ghost}]\ncpus = 2\n")
    done = hub_config(site, "--spawner", "systemd")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    line = done.stderr.strip().splitlines()[0]
    assert f"{ghost} is named in {site} but has no Unix account" in line, line


def test_a_spawner_whose_package_is_missing_names_the_package(tmp_path: Path) -> None:
    """labshare installed without its hub extras, as an admin who forgot them would have it."""
    venv = tmp_path / "bare"
    env = {**os.environ, "UV_CACHE_DIR": str(UV_CACHE), "UV_PYTHON_DOWNLOADS": "never"}
    subprocess.run(["uv", "venv", "-q", "--python", sys.executable, str(venv)], env=env, check=True)
    repo = Path(__file__).resolve().parents[1]
    subprocess.run(
        ["uv", "pip", "install", "-q", "--python", str(venv / "bin/python"), str(repo)],
        env=env,
        check=True,
        timeout=600,
    )
    site = site_file(tmp_path, '[admin]\nusers = ["root"]\n')
    for spawner, package in (
        ("systemd", "jupyterhub"),
        ("slurm", "batchspawner"),
        ("kubernetes", "jupyterhub-kubespawner"),
    ):
        done = hub_config(site, "--spawner", spawner, python_bin=venv / "bin")
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        line = done.stderr.strip().splitlines()[0]
        assert line.startswith(f"labshare: error: `--spawner {spawner}` needs "), line
        assert package in line and "scripts/install --upgrade --extra " in line, line


def test_an_existing_file_labshare_did_not_write_is_kept_unless_confirmed(tmp_path: Path) -> None:
    site = root_only_site(tmp_path)
    out = tmp_path / "jupyterhub_config.py"
    out.write_text("c.JupyterHub.admin_access = True  # hand-made\n")
    done = hub_config(site, "-o", str(out))
    assert done.returncode != 0 and "pass --yes" in done.stderr
    assert out.read_text() == "c.JupyterHub.admin_access = True  # hand-made\n"
    assert hub_config(site, "-o", str(out), "--yes").returncode == 0
    assert out.read_text().startswith("# labshare-generated")
    assert hub_config(site, "-o", str(out)).returncode == 0  # ours now: replaced without asking


@pytest.mark.alone
def test_plan_lists_running_servers_freed_ports_installs_unit_and_access(
    lab, shared_tmp: Path
) -> None:
    port = free_port()
    site = site_file(
        shared_tmp,
        lab.site.read_text().replace("[admin]", f"[ports]\n{lab.alice.name} = {port}\n\n[admin]"),
    )
    alice = lab.alice
    subprocess.run(["usermod", "-d", str(alice.home), alice.name], check=True)
    started = alice.run("start", "--json", env={"LABSHARE_SITE_CONFIG": str(site)}, timeout=300)
    assert started.returncode == 0, started.stderr
    try:
        plan = json.loads(hub_config(site, "--plan", "--json").stdout)
        text = hub_config(site, "--plan").stdout
    finally:
        alice.run("stop", env={"LABSHARE_SITE_CONFIG": str(site)}, timeout=120)
    assert [r["user"] for r in plan["running"]] == [alice.name]
    assert port in plan["ports_freed"]
    commands = [c for step in plan["steps"] for c in step["commands"]]
    assert "npm install -g configurable-http-proxy" in commands
    assert any("jupyterhub-systemdspawner" in c for c in commands)
    assert not any("labshare stop" in c for c in commands)  # the hub's server adopts the kernels
    (move,) = [step for step in plan["steps"] if step["title"].startswith("Nothing to stop")]
    assert alice.name in move["text"] and "adopts its kernels" in move["text"]
    assert any(c.endswith("--extra hub") or "--extra hub " in c for c in commands)
    assert (
        "ExecStart=/opt/jupyterhub/bin/jupyterhub -f /etc/jupyterhub/jupyterhub_config.py"
        in plan["unit"]
    )
    assert plan["access"].startswith("ssh -N -L 8000:127.0.0.1:8000 ")
    assert alice.name in text and "ssh -N -L 8000:127.0.0.1:8000" in text


def test_the_slurm_plan_puts_labshare_in_the_hubs_environment(tmp_path: Path) -> None:
    """The Slurm config names labshare's spawner class, so the hub's own venv must import labshare."""
    done = hub_config(root_only_site(tmp_path), "--spawner", "slurm", "--plan", "--json")
    assert done.returncode == 0, done.stderr
    commands = [c for step in json.loads(done.stdout)["steps"] for c in step["commands"]]
    assert any(
        " pip install --python /opt/jupyterhub/bin/python " in c and "[slurm]" in c
        for c in commands
    )
    # made by labshare's uv, as a server without python3-venv has no `python3 -m venv`
    assert any(" venv --python python3 /opt/jupyterhub" in c for c in commands), commands
