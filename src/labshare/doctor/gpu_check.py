"""The `gpus` check: can this host give out its cards the way the site config says?

With leases (`assign = "per-kernel"`) a kernel starts only if NVML answers
and the leases directory is root's, sticky and 1777 (the same test a claim
makes, `ClaimsDir.checked`, so doctor and the claim never disagree); stale
leases and GPU processes without a lease are warnings, since they hold
cards nobody can see are taken.  Without leases the member's card list is
all there is, and doctor says how it reaches the kernels.
"""

from __future__ import annotations

from collections.abc import Sequence

from labshare import config
from labshare.config import GpuSettings, Limits
from labshare.doctor import FAIL, OK, WARN, Check
from labshare.errors import LabshareError
from labshare.gpus import leases as gpu_leases
from labshare.gpus import nvml
from labshare.gpus.leases import Lease
from labshare.install_hint import upgrade_command
from labshare.monitor import leased
from labshare.monitor.sampling import read_processes
from labshare.paths import Paths
from labshare.render.monitor import size

NAME = "gpus"
_SHOWN = 3  # processes or leases named in one line; the rest are counted


def check(paths: Paths, user: str, reader: nvml.GpuReader = nvml.read_nvml) -> Check:
    """The `gpus` check for `user` under this host's site config."""
    try:
        site, policy = config.effective(paths.site_config, paths.user_config_file, user)
    except LabshareError:
        return Check(
            NAME, WARN, "not checked, since the site config does not load (see site-policy)"
        )
    return gpus(site.gpus, policy.limits, nvml.read(reader))


def gpus(settings: GpuSettings, limits: Limits, reading: nvml.GpuReading) -> Check:
    """The verdict for this member, from the site's `[gpus]`, their limits and one NVML reading."""
    if not settings.leased:
        return _static(limits, reading)
    if reading.unavailable is not None:
        return Check(
            NAME,
            FAIL,
            f'[gpus] assign = "per-kernel", but NVML does not answer ({reading.unavailable}), '
            "so no kernel that needs a GPU can start",
            'see the `gpu` check above; an admin may set assign = "off" until the driver answers',
        )
    directory = gpu_leases.directory(settings.leases_dir)
    try:
        directory.checked()
    except LabshareError as exc:
        return Check(
            NAME, FAIL, exc.message, f"sudo install -d -m 1777 -o root {settings.leases_dir}"
        )
    found = gpu_leases.leases(settings.leases_dir)
    live = [lease for lease in found if lease.live]
    stale = [lease for lease in found if not lease.live]
    stray = leased.unleased(reading.devices, read_processes(), live)
    head = (
        f"leases in {settings.leases_dir}: {len(live)} live on {len(reading.devices)} card(s), "
        f"{settings.per_kernel} per kernel, {settings.sharing}"
    )
    if not stale and not stray:
        return Check(NAME, OK, head + "; every GPU process holds a lease")
    parts, fixes = [head], []
    if stale:
        parts.append(f"{len(stale)} stale: " + _listed([_stale(lease) for lease in stale]))
        fixes.append(
            f"each goes at its owner's next kernel start; root may remove them now from {settings.leases_dir}"
        )
    if stray:
        parts.append(
            f"{len(stray)} GPU process(es) without a lease: " + _listed([_stray(p) for p in stray])
        )
        fixes.append(
            "run such commands with `labshare run --gpus N -- COMMAND` (see `labshare gpus`)"
        )
    return Check(NAME, WARN, "; ".join(parts), "; ".join(fixes))


def _static(limits: Limits, reading: nvml.GpuReading) -> Check:
    head = 'GPU leases are off ([gpus] assign = "off")'
    if limits.gpus is None:
        return Check(NAME, OK, f"{head}: your kernels may use every card")
    cards = ",".join(map(str, limits.gpus)) or "none"
    if reading.unavailable is not None:
        return Check(
            NAME,
            WARN,
            f"{head}: your kernels get GPUs {cards} by index with CUDA_DEVICE_ORDER=PCI_BUS_ID, "
            f"since NVML does not answer here ({reading.unavailable}) to name them by UUID",
            f"{upgrade_command('gpu')}, or ask the admin whether the driver is loaded",
        )
    return Check(NAME, OK, f"{head}: your kernels get GPUs {cards}, named by UUID")


def _stale(lease: Lease) -> str:
    return f"{lease.user}'s {lease.name} ({lease.stale})"


def _stray(proc: leased.Unleased) -> str:
    return f"{proc.user or '?'}'s pid {proc.pid} ({proc.command or '?'}, {size(proc.memory_bytes)} on GPU {proc.gpu})"


def _listed(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    return shown + (f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")
