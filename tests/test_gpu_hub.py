"""`hub-config` carries the GPU policy where the spawner can, proven by each spawner's own code.

The configs are loaded with JupyterHub's loader (traitlets' own) and handed
to the real SystemdSpawner, SlurmSpawner (its sbatch script rendered) and
Kubernetes values parsed as YAML.  Every spawner runs labshare's own server
(leases per kernel, reclaim) where labshare is installed; what a spawner
still takes away must be said in the file and in `--json`, and what cannot
work at all is refused (tests/test_hub_boot.py boots a hub).
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from fake_gpus import FakeNvml, fake_nvml, nvml_stub
from test_hub_config import fake_user, hub_config, load, site_file

LEASED = '[gpus]\nassign = "per-kernel"\nidle_reclaim_after = "2h"\n'


@pytest.fixture
def lab(make_user, tmp_path: Path) -> SimpleNamespace:
    """alice may use cards 0, 1 and 2 but hold two at once; bob holds at most one, any card."""
    alice, bob = make_user(), make_user()

    def site(head: str = LEASED) -> Path:
        return site_file(
            tmp_path,
            f"{head}[users.{alice.name}]\ngpus = [0, 1, 2]\nmax_gpus = 2\n"
            f"[users.{bob.name}]\nmax_gpus = 1\n[admin]\nusers = []\n",
        )

    return SimpleNamespace(alice=alice.name, bob=bob.name, site=site, tmp=tmp_path)


def systemd_spawner(cfg, name: str):
    from systemdspawner import SystemdSpawner

    groups = [
        g for g, spec in cfg.JupyterHub.get("load_groups", {}).items() if name in spec["users"]
    ]
    spawner = SystemdSpawner(config=cfg, user=fake_user(name, groups))
    asyncio.run(spawner.apply_group_overrides())
    return spawner


def test_systemd_carries_the_whole_gpu_policy_by_running_labshares_server(lab) -> None:
    out = lab.tmp / "jupyterhub_config.py"
    done = hub_config(lab.site(), "--spawner", "systemd", "-o", str(out), "--json")
    assert done.returncode == 0, done.stderr
    for name in (lab.alice, lab.bob):
        spawner = systemd_spawner(load(out), name)
        assert spawner.cmd[1:] == ["singleuser"]  # leases, caps and reclaim are applied at spawn
        assert "CUDA_VISIBLE_DEVICES" not in spawner.environment
    assert json.loads(done.stdout)["not_carried"] == []
    assert "# Note:" not in out.read_text()


def test_slurm_asks_for_as_many_cards_as_each_member_may_hold(lab, fake_nvml: FakeNvml) -> None:
    out = lab.tmp / "slurm_config.py"
    done = hub_config(lab.site(), "--spawner", "slurm", "-o", str(out), "--json", env=fake_nvml.env)
    assert done.returncode == 0, done.stderr
    cfg = load(out)

    from batchspawner import SlurmSpawner
    from batchspawner.batchspawner import format_template

    def script(name: str) -> list[str]:
        spawner = SlurmSpawner(
            config=cfg, user=fake_user(name, [f"labshare-{name}"]), req_keepvars="PATH"
        )
        asyncio.run(spawner.apply_group_overrides())
        subvars = spawner.get_req_subvars()
        subvars["cmd"] = "jupyterhub-singleuser"
        return format_template(spawner.batch_script, **subvars).splitlines()

    assert "#SBATCH --gres=gpu:2" in script(lab.alice)  # three cards named, two at once
    assert "#SBATCH --gres=gpu:1" in script(lab.bob)
    notes = json.loads(done.stdout)["not_carried"]
    assert (
        f"Which cards ({lab.alice}'s [users.NAME].gpus) is not carried, only how many: Slurm picks "
        "the cards, and kernels lease among those." in notes
    )
    assert not any("UUID" in n for n in notes)


def test_kubernetes_limits_each_member_to_the_cards_they_may_hold(lab) -> None:
    out = lab.tmp / "values.yaml"
    image = '[hub]\nimage = "registry.lab.example:5000/labshare-singleuser:2026.12"\n'
    done = hub_config(lab.site(LEASED + image), "--spawner", "kubernetes", "-o", str(out))
    assert done.returncode == 0, done.stderr
    values = yaml.safe_load(out.read_text())
    overrides = values["hub"]["config"]["KubeSpawner"]["group_overrides"]
    limits = {
        name: overrides[f"labshare-{name}"]["spawner_override"]["extra_resource_limits"]
        for name in (lab.alice, lab.bob)
    }
    assert limits == {lab.alice: {"nvidia.com/gpu": "2"}, lab.bob: {"nvidia.com/gpu": "1"}}
    assert values["singleuser"]["image"] == {
        "name": "registry.lab.example:5000/labshare-singleuser",
        "tag": "2026.12",
    }
    assert values["singleuser"]["cmd"] == ["labshare", "singleuser"]
    text = out.read_text().replace("\n#   ", " ")
    assert "the NVIDIA device plugin picks the cards, and kernels lease among those." in text
    assert "Kernels do not survive a restart of the member's pod" in text


def test_kubernetes_without_a_labshare_image_refuses_leases_and_says_what_is_lost(lab) -> None:
    refused = hub_config(lab.site(), "--spawner", "kubernetes")
    assert refused.returncode != 0 and refused.stdout == ""
    assert refused.stderr.strip() == (
        'labshare: error: Per-kernel GPU leases ([gpus] assign = "per-kernel") need labshare inside '
        "the single-user image on Kubernetes; build one from docker/Dockerfile and name it in "
        '[hub] image, or set [gpus] assign = "off".'
    )
    done = hub_config(lab.site(""), "--spawner", "kubernetes", "--json")
    assert done.returncode == 0, done.stderr
    (lost,) = [n for n in json.loads(done.stdout)["not_carried"] if "server parts" in n]
    assert "labshare's server parts are not carried" in lost and "[hub] image" in lost
