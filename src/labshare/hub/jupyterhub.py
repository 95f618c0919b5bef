"""The site policy as JupyterHub configuration: a pure function, like TLJH's `apply_config(config, c)`.

`apply_config` takes plain data (the validated site config and the facts
gathered about this host's members) and sets values on a
`traitlets.config.Config`; it reads no files and asks no system, so tests
build any lab in memory and check the result with JupyterHub's own loader.
`values` does the same for a Zero to JupyterHub `values.yaml` on Kubernetes.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Any

from labshare.config import Limits, Site, schema, size_bytes
from labshare.hub import slurm as slurm_jobs
from labshare.hub import spawner_gpus
from labshare.paths import Paths

SPAWNERS = ("systemd", "slurm", "kubernetes")
SPAWNER_CLASS = {
    "systemd": "systemdspawner.SystemdSpawner",
    "slurm": slurm_jobs.SPAWNER_CLASS,
    "kubernetes": "kubespawner.KubeSpawner",
}
CULLER = "jupyterhub-idle-culler"
CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
# Research servers sit idle overnight while a long job's notebook waits for its owner:
# a day, not TLJH's ten minutes, unless the admin says otherwise.
DEFAULT_IDLE_TIMEOUT = 86400
DEFAULT_ROOT_DIR: str = schema.default("server", "root_dir")
DEFAULT_SITE_CONFIG = str(Paths.site_config)


class Expr(str):
    """A string whose value is known now but which a config file should spell as code (`sys.executable`)."""

    source: str

    def __new__(cls, value: str, source: str) -> Expr:
        self = super().__new__(cls, value)
        self.source = source
        return self

    def __repr__(self) -> str:
        return self.source


@dataclass(frozen=True)
class MemberFacts:
    """One member as the hub must know them: effective limits and root dir, and what runs now."""

    name: str
    limits: Limits = Limits()
    root_dir: str = DEFAULT_ROOT_DIR
    admin: bool = False
    has_state: bool = False
    running: bool = False
    mode: str | None = None
    port: int | None = None
    pid: int | None = None


@dataclass(frozen=True)
class HubInputs:
    """Everything the export depends on, so the same inputs always give the same config."""

    site: Site
    members: tuple[MemberFacts, ...] = ()
    group_names: tuple[str, ...] = field(default=())
    labshare: str = "labshare"  # the `labshare` command on the hosts where members' servers run

    @property
    def names(self) -> list[str]:
        return sorted(m.name for m in self.members)

    @property
    def admins(self) -> list[str]:
        return sorted(set(self.site.admins) | {m.name for m in self.members if m.admin})


def hub_memory(size: str) -> str | int:
    """JupyterHub's ByteSpecification takes "64G"; a bare number of bytes goes as an int."""
    return size_bytes(size) if size[-1:].isdigit() else size


def slurm_memory(size: str) -> str:
    """Slurm's --mem reads a bare number as megabytes, so always give a unit."""
    return f"{math.ceil(size_bytes(size) / 2**20)}M" if size[-1:].isdigit() else size


def idle_timeout(site: Site) -> int | None:
    """Seconds an idle server lives: [hub] idle_timeout, else the site's idle-server shutdown, else a day."""
    if site.hub.idle_timeout is not None:
        return int(site.hub.idle_timeout) or None
    own = site.server.get("shutdown_idle_server_after")
    return int(own) if own else DEFAULT_IDLE_TIMEOUT


def root_dir(site: Site) -> str:
    return str(site.server.get("root_dir") or DEFAULT_ROOT_DIR)


def override_group(name: str) -> str:
    return f"labshare-{name}"


def _override(member: MemberFacts, spawner: str, default_root: str) -> dict[str, Any]:
    """The spawner settings that differ for this member, in the chosen spawner's own trait names."""
    lim = member.limits
    out: dict[str, Any] = {}
    if spawner == "slurm":
        if lim.memory_max:
            out["req_memory"] = slurm_memory(lim.memory_max)
        if lim.cpus is not None:
            out["req_nprocs"] = str(math.ceil(lim.cpus))
    else:
        if lim.memory_max:
            out["mem_limit"] = hub_memory(lim.memory_max)
        if lim.cpus is not None:
            out["cpu_limit"] = lim.cpus
    out.update(spawner_gpus.override(lim, spawner))
    if member.root_dir != default_root and spawner != "kubernetes":
        out["notebook_dir"] = member.root_dir
    return out


def per_member(inputs: HubInputs, spawner: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """`load_groups` and `group_overrides`: one hub group per member whose settings differ."""
    groups: dict[str, Any] = {}
    overrides: dict[str, Any] = {}
    default_root = root_dir(inputs.site)
    for member in sorted(inputs.members, key=lambda m: m.name):
        change = _override(member, spawner, default_root)
        if change:
            group = override_group(member.name)
            groups[group] = {"users": [member.name]}
            overrides[group] = {"groups": [group], "spawner_override": change}
    return groups, overrides


def singleuser_cmd(inputs: HubInputs) -> list[str]:
    """What the spawner runs: labshare's server, with the site's rules, under the hub's login."""
    return [inputs.labshare, "singleuser"]


def kernel_culling_args(site: Site) -> list[str]:
    """Kernel culling inside each member's server, as `labshare start` does it."""
    after = site.server.get("cull_idle_kernels_after")
    if not after:
        return []
    timeout = max(1, int(after))
    return [
        f"--MappingKernelManager.cull_idle_timeout={timeout}",
        f"--MappingKernelManager.cull_interval={max(1, min(300, timeout // 2))}",
        f"--MappingKernelManager.cull_busy={bool(site.server.get('cull_busy_kernels', False))}",
    ]


def culler_service(timeout: int) -> tuple[dict[str, Any], dict[str, Any]]:
    every = max(60, min(3600, timeout // 10))
    service = {
        "name": CULLER,
        "command": [
            Expr(sys.executable, "sys.executable"),
            "-m",
            "jupyterhub_idle_culler",
            f"--timeout={timeout}",
            f"--cull-every={every}",
        ],
    }
    role = {"name": f"{CULLER}-role", "scopes": list(CULLER_SCOPES), "services": [CULLER]}
    return service, role


def apply_config(inputs: HubInputs, spawner: str, c: Any) -> Any:
    """Set the lab's JupyterHub configuration on `c` (a traitlets Config) and return it."""
    if spawner not in ("systemd", "slurm"):
        raise ValueError(
            f"apply_config writes jupyterhub_config.py for systemd or slurm, not {spawner!r}"
        )
    site, hub = inputs.site, inputs.site.hub

    c.JupyterHub.bind_url = f"http://{hub.ip}:{hub.port}/"
    c.JupyterHub.hub_ip = "127.0.0.1" if spawner == "systemd" else hub.ip
    c.JupyterHub.cleanup_servers = False
    c.JupyterHub.authenticator_class = hub.authenticator
    c.JupyterHub.spawner_class = SPAWNER_CLASS[spawner]

    c.Authenticator.allowed_users = set(inputs.names)
    c.Authenticator.admin_users = set(inputs.admins)
    if hub.authenticator == "pam" and inputs.group_names:
        c.PAMAuthenticator.allowed_groups = set(inputs.group_names)

    c.Spawner.default_url = "/lab"
    c.Spawner.notebook_dir = root_dir(site)
    c.Spawner.cmd = singleuser_cmd(inputs)
    if site.path is not None and str(site.path) != DEFAULT_SITE_CONFIG:
        c.Spawner.environment = {"LABSHARE_SITE_CONFIG": str(site.path)}

    if spawner == "systemd":
        c.SystemdSpawner.dynamic_users = False
        c.SystemdSpawner.isolate_devices = False
    else:
        slurm = hub.slurm
        req = {
            "req_partition": slurm.partition,
            "req_runtime": slurm.runtime,
            "req_memory": slurm_memory(slurm.memory) if slurm.memory else None,
            "req_nprocs": str(slurm.cpus) if slurm.cpus else None,
            "req_gres": slurm.gres,
            "req_account": slurm.account,
            "req_qos": slurm.qos,
        }
        for key, value in req.items():
            if value is not None:
                c.SlurmSpawner[key] = value
        for key, setting in slurm_jobs.spawner_settings(inputs.labshare).items():
            c.SlurmSpawner[key] = setting
        c.Spawner.start_timeout = 600
        c.Spawner.http_timeout = 120

    groups, overrides = per_member(inputs, spawner)
    if groups:
        c.JupyterHub.load_groups = groups
        c.Spawner.group_overrides = overrides

    timeout = idle_timeout(site)
    if timeout:
        service, role = culler_service(timeout)
        c.JupyterHub.services = [service]
        c.JupyterHub.load_roles = [role]
    return c


def image_ref(image: str) -> dict[str, str]:
    """The chart's `{name, tag}` for an image reference; a registry's port is not a tag."""
    name, colon, tag = image.rpartition(":")
    if not colon or "/" in tag:
        return {"name": image, "tag": "latest"}
    return {"name": name, "tag": tag}


def values(inputs: HubInputs) -> dict[str, Any]:
    """A Zero to JupyterHub `values.yaml`, as data: the chart runs the culler with the right scopes itself."""
    site, hub = inputs.site, inputs.site.hub
    groups, overrides = per_member(inputs, "kubernetes")
    jupyterhub: dict[str, Any] = {
        "cleanup_servers": False,
        "authenticator_class": hub.authenticator,
    }
    if groups:
        jupyterhub["load_groups"] = groups
    config: dict[str, Any] = {
        "JupyterHub": jupyterhub,
        "Authenticator": {"allowed_users": inputs.names, "admin_users": inputs.admins},
    }
    if overrides:
        config["KubeSpawner"] = {"group_overrides": overrides}
    singleuser: dict[str, Any] = {"defaultUrl": "/lab"}
    if hub.image:
        singleuser["image"] = image_ref(hub.image)
        singleuser["cmd"] = ["labshare", "singleuser"]
    else:
        args = kernel_culling_args(site)
        if args:
            singleuser["cmd"] = ["jupyterhub-singleuser", *args]
    out: dict[str, Any] = {
        "hub": {"config": config},
        "proxy": {"service": {"type": "ClusterIP"}},
        "singleuser": singleuser,
    }
    timeout = idle_timeout(site)
    out["cull"] = (
        {"enabled": True, "timeout": timeout, "every": max(60, min(3600, timeout // 10))}
        if timeout
        else {"enabled": False}
    )
    return out
