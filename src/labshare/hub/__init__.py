"""Export the lab to JupyterHub: SystemdSpawner on one server, SlurmSpawner on a cluster, KubeSpawner.

`facts` gathers what the host knows, `jupyterhub` turns it into config data
(pure), `render` writes it as text, `plan` lists the migration steps.
`generate` ties them together for the CLI and proves the text loads.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from labshare.errors import LabshareError
from labshare.install_hint import reinstall_hint

# What must be importable to write and check each spawner's config: (module, PyPI package).
NEEDS = {
    "systemd": [
        ("jupyterhub", "jupyterhub"),
        ("systemdspawner", "jupyterhub-systemdspawner"),
        ("jupyterhub_idle_culler", "jupyterhub-idle-culler"),
    ],
    "slurm": [
        ("jupyterhub", "jupyterhub"),
        ("batchspawner", "batchspawner"),
        ("jupyterhub_idle_culler", "jupyterhub-idle-culler"),
    ],
    "kubernetes": [("yaml", "pyyaml"), ("kubespawner", "jupyterhub-kubespawner")],
}
EXTRA = {"systemd": "hub", "slurm": "slurm", "kubernetes": "kubernetes"}
FILE_NAME = {
    "systemd": "jupyterhub_config.py",
    "slurm": "jupyterhub_config.py",
    "kubernetes": "values.yaml",
}


@dataclass
class HubConfig:
    """What `hub-config` made: the text, and who it lets in."""

    spawner: str
    site_config: str
    format: str
    members: list[str] = field(default_factory=list)
    admins: list[str] = field(default_factory=list)
    overrides: dict[str, dict] = field(default_factory=dict)
    idle_timeout: int | None = None
    bind_url: str = ""
    text: str = ""
    written_to: str | None = None
    # the GPU policy's parts the hub cannot hold
    not_carried: list[str] = field(default_factory=list)


def require(spawner: str) -> None:
    """Fail in one sentence naming the package when the spawner's extra is not installed."""
    absent = [
        package for module, package in NEEDS[spawner] if importlib.util.find_spec(module) is None
    ]
    if absent:
        names = ", ".join(absent)
        raise LabshareError(
            f"`--spawner {spawner}` needs {names}, which {'is' if len(absent) == 1 else 'are'} not installed "
            f"where labshare runs; to add it, {reinstall_hint(EXTRA[spawner])}, and run again."
        )


def runnable(command: str) -> None:
    """The spawner's command must run on this host, or every member's server fails to start."""
    if not (os.path.isabs(command) and os.access(command, os.X_OK)):
        raise LabshareError(
            f"The hub would start members' servers with {command} singleuser, but {command} is "
            "not a labshare command on this host; set [hub] labshare to its absolute path, then run again."
        )


def generate(site_path: Path, spawner: str, command: str) -> HubConfig:
    from labshare.hub import facts, jupyterhub, render, spawner_gpus

    require(spawner)
    inputs = facts.gather(site_path)
    host = socket.gethostname()
    left = spawner_gpus.not_carried(
        inputs.site.gpus,
        [(m.name, m.limits) for m in inputs.members],
        spawner,
        inputs.site.hub.image,
    )
    if spawner == "systemd":
        runnable(inputs.labshare)
    # What hub-config could not check goes in the file's notes, not in `not_carried`.
    unchecked: list[str] = []
    if spawner == "slurm":
        from labshare.hub import slurm

        unchecked = slurm.check(inputs.labshare, inputs.site.hub.slurm)
    head = render.header(command, f"{site_path} on {host}", [*left, *unchecked])
    _, overrides = jupyterhub.per_member(inputs, spawner)
    result = HubConfig(
        spawner=spawner,
        site_config=str(site_path),
        format="yaml" if spawner == "kubernetes" else "python",
        members=inputs.names,
        admins=inputs.admins,
        overrides={k: v["spawner_override"] for k, v in overrides.items()},
        idle_timeout=jupyterhub.idle_timeout(inputs.site),
        not_carried=left,
    )
    if spawner == "kubernetes":
        result.text = render.yaml_file(jupyterhub.values(inputs), head)
        return result
    from traitlets.config import Config

    c = jupyterhub.apply_config(inputs, spawner, Config())
    result.bind_url = c.JupyterHub.bind_url
    result.text = render.python_file(c, head)
    if render.load_python(result.text) != c:
        raise LabshareError(
            "The written JupyterHub config does not load back to the same values; "
            "this is a bug in labshare, please report it."
        )
    return result
