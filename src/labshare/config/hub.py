"""`[hub]` of the site config: what `labshare hub-config` needs to write a JupyterHub config."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labshare.config import schema
from labshare.config.values import table as section


def _slurm(name: str) -> Any:
    return schema.default("hub.slurm", name)


@dataclass(frozen=True)
class SlurmSettings:
    """`[hub.slurm]`: what each member's job asks Slurm for (batchspawner's req_* values)."""

    partition: str | None = _slurm("partition")
    runtime: str | None = _slurm("runtime")
    memory: str | None = _slurm("memory")
    cpus: int | None = _slurm("cpus")
    gres: str | None = _slurm("gres")
    account: str | None = _slurm("account")
    qos: str | None = _slurm("qos")
    labshare_only_on_nodes: bool = _slurm("labshare_only_on_nodes")


@dataclass(frozen=True)
class HubSettings:
    """`[hub]`: where JupyterHub listens and how it treats idle servers, for `labshare hub-config`."""

    ip: str = schema.default("hub", "ip")
    port: int = schema.default("hub", "port")
    authenticator: str = schema.default("hub", "authenticator")
    # None: derived from [server]; 0: no culling
    idle_timeout: float | None = schema.default("hub", "idle_timeout")
    prefix: str = schema.default("hub", "prefix")
    labshare: str | None = schema.default("hub", "labshare")
    image: str | None = schema.default("hub", "image")
    slurm: SlurmSettings = SlurmSettings()


def parse_hub(path: Path, table: Mapping[str, Any]) -> HubSettings:
    out = schema.parse(path, "hub", table)
    out.pop("slurm", None)
    if "idle_timeout" in out:
        out["idle_timeout"] = out["idle_timeout"] or 0.0
    return HubSettings(
        **out, slurm=SlurmSettings(**schema.parse(path, "hub.slurm", section(path, table, "slurm")))
    )
