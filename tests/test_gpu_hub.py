"""`hub-config` carries the GPU policy where the spawner can, proven by each spawner's own code.

The configs are loaded with JupyterHub's loader (traitlets' own) and handed
to the real SystemdSpawner, SlurmSpawner (its sbatch script rendered) and
Kubernetes values parsed as YAML; card UUIDs come from the stand-in NVML
through the real nvidia-ml-py, as they would from the driver of the host
that runs hub-config.  What no hub can carry (per-kernel leases, idle
reclaim) must be said in the file and in `--json`.
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


def test_systemd_names_each_members_cards_by_uuid_and_says_what_stays_behind(
    lab, fake_nvml: FakeNvml
) -> None:
    out = lab.tmp / "jupyterhub_config.py"
    done = hub_config(
        lab.site(), "--spawner", "systemd", "-o", str(out), "--json", env=fake_nvml.env
    )
    assert done.returncode == 0, done.stderr
    alice = systemd_spawner(load(out), lab.alice)
    uuids = [c.uuid for c in fake_nvml.cards]
    assert alice.environment == {
        "CUDA_VISIBLE_DEVICES": ",".join(uuids[:3]),
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
    }
    assert "CUDA_VISIBLE_DEVICES" not in systemd_spawner(load(out), lab.bob).environment

    notes = json.loads(done.stdout)["not_carried"]
    host = socket.gethostname()
    assert notes[0].startswith(
        'Per-kernel GPU leases ([gpus] assign = "per-kernel", per_kernel = 1, sharing = '
        '"exclusive") are labshare\'s own and are not carried'
    )
    assert notes[1].startswith(
        "Idle GPU reclaim ([gpus] idle_reclaim_after, 2 h) is labshare's own"
    )
    assert notes[2] == (
        f"max_gpus of {lab.bob} is not carried: SystemdSpawner cannot cap a number of cards "
        "without naming them; list their cards with gpus = [...] instead."
    )
    assert (
        notes[3]
        == f"Cards are named by UUID as NVML lists them on {host} now; run hub-config again after a card is changed."
    )
    assert notes[4].startswith("CUDA_VISIBLE_DEVICES is a convention, not a wall")
    head = out.read_text().split("import sys")[0]
    assert "# Note: Per-kernel GPU leases" in head and "# Note: Idle GPU reclaim" in head


def test_systemd_without_nvml_names_cards_by_index_in_pci_order_and_says_so(
    lab, fake_nvml: FakeNvml
) -> None:
    fake_nvml.remove()
    out = lab.tmp / "jupyterhub_config.py"
    done = hub_config(
        lab.site(""), "--spawner", "systemd", "-o", str(out), "--json", env=fake_nvml.env
    )
    assert done.returncode == 0, done.stderr
    assert systemd_spawner(load(out), lab.alice).environment == {
        "CUDA_VISIBLE_DEVICES": "0,1,2",
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
    }
    notes = json.loads(done.stdout)["not_carried"]
    assert not any(n.startswith(("Per-kernel", "Idle GPU")) for n in notes)  # leases are off here
    assert notes[-2].startswith(
        f"NVML does not answer on {socket.gethostname()} (no GPU: the NVIDIA driver does "
        "not answer (Driver Not Loaded)), so cards are named by index, with "
        "CUDA_DEVICE_ORDER=PCI_BUS_ID"
    )
    written = hub_config(lab.site(""), "--spawner", "systemd", "-o", str(out), env=fake_nvml.env)
    assert f"Note: {notes[-2]}" in written.stdout.splitlines()


def test_a_card_nvml_does_not_list_is_left_out_as_labshare_itself_leaves_it(
    lab, fake_nvml: FakeNvml
) -> None:
    fake_nvml.cards = fake_nvml.cards[:2]  # the site names GPU 2, which this host does not have
    fake_nvml.write()
    done = hub_config(lab.site(""), "--spawner", "systemd", "--json", env=fake_nvml.env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    environment = report["overrides"][f"labshare-{lab.alice}"]["environment"]
    assert environment["CUDA_VISIBLE_DEVICES"] == ",".join(c.uuid for c in fake_nvml.cards)
    assert (
        "NVML lists no GPU 2, which the site config names, so it is left out"
        in report["not_carried"][-2]
    )


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
        f"Which cards ({lab.alice}'s [users.NAME].gpus) is not carried, only how many: Slurm picks the cards."
        in notes
    )
    assert not any("UUID" in n for n in notes)


def test_kubernetes_limits_each_member_to_the_cards_they_may_hold(lab, fake_nvml: FakeNvml) -> None:
    out = lab.tmp / "values.yaml"
    done = hub_config(lab.site(), "--spawner", "kubernetes", "-o", str(out), env=fake_nvml.env)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    overrides = yaml.safe_load(text)["hub"]["config"]["KubeSpawner"]["group_overrides"]
    limits = {
        name: overrides[f"labshare-{name}"]["spawner_override"]["extra_resource_limits"]
        for name in (lab.alice, lab.bob)
    }
    assert limits == {lab.alice: {"nvidia.com/gpu": "2"}, lab.bob: {"nvidia.com/gpu": "1"}}
    assert (
        "# Note: Per-kernel GPU leases" in text
        and "the NVIDIA device plugin picks the cards." in text.replace("\n#   ", " ")
    )
