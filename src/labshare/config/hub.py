"""`[hub]` of the site config: what `labshare hub-config` needs to write a JupyterHub config."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labshare.config.values import MEMORY_SIZE, duration, fail, unknown
from labshare.config.values import table as section


@dataclass(frozen=True)
class SlurmSettings:
    """`[hub.slurm]`: what each member's job asks Slurm for (batchspawner's req_* values)."""

    partition: str | None = None
    runtime: str | None = None
    memory: str | None = None
    cpus: int | None = None
    gres: str | None = None
    account: str | None = None
    qos: str | None = None


@dataclass(frozen=True)
class HubSettings:
    """`[hub]`: where JupyterHub listens and how it treats idle servers, for `labshare hub-config`."""

    ip: str = "127.0.0.1"
    port: int = 8000
    authenticator: str = "pam"
    idle_timeout: float | None = None  # None: derived from [server]; 0: no culling
    prefix: str = "/opt/jupyterhub"
    slurm: SlurmSettings = SlurmSettings()


HUB_KEYS = {"ip", "port", "authenticator", "idle_timeout", "prefix", "slurm"}
_SLURM_TEXT = {"partition", "runtime", "memory", "gres", "account", "qos"}
_IP = re.compile(r"^(\d{1,3}(\.\d{1,3}){3}|[0-9a-fA-F:]+)$")


def parse_hub(path: Path, table: Mapping[str, Any]) -> HubSettings:
    unknown(path, "hub", table, HUB_KEYS)
    out: dict[str, Any] = {}
    for key in ("ip", "authenticator", "prefix"):
        if key in table:
            value = table[key]
            if not isinstance(value, str) or not value.strip():
                raise fail(path, f"hub.{key}", f"must be a non-empty string, got {value!r}")
            out[key] = value
    if "ip" in out and not _IP.match(out["ip"]):
        raise fail(path, "hub.ip", f"must be an IP address such as \"127.0.0.1\", got {out['ip']!r}")
    if "prefix" in out and not out["prefix"].startswith("/"):
        raise fail(path, "hub.prefix", "must be an absolute path such as \"/opt/jupyterhub\"")
    if "port" in table:
        port = table["port"]
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise fail(path, "hub.port", f"must be a port number between 1 and 65535, got {port!r}")
        out["port"] = port
    if "idle_timeout" in table:
        out["idle_timeout"] = duration(path, "hub.idle_timeout", table["idle_timeout"]) or 0.0
    slurm = section(path, table, "slurm")
    unknown(path, "hub.slurm", slurm, _SLURM_TEXT | {"cpus"})
    req: dict[str, Any] = {}
    for key, value in slurm.items():
        if key == "cpus":
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise fail(path, "hub.slurm.cpus", f"must be a positive whole number of CPUs, got {value!r}")
        elif key == "memory":
            if not isinstance(value, str) or not MEMORY_SIZE.match(value):
                raise fail(path, "hub.slurm.memory", f"must be a size such as \"64G\", got {value!r}")
        elif not isinstance(value, str) or not value.strip():
            raise fail(path, f"hub.slurm.{key}", f"must be a non-empty string, got {value!r}")
        req[key] = value
    return HubSettings(**out, slurm=SlurmSettings(**req))
