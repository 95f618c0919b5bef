"""The lab's GPU policy as each spawner can carry it, and, said plainly, what none of them can.

A hub gives each member's server its cards for the server's whole life:
Slurm by gres (`gpu:N`, Slurm picks the cards), Kubernetes by the device
plugin's `nvidia.com/gpu` limit (the plugin picks), SystemdSpawner by
`CUDA_VISIBLE_DEVICES` in the server's environment, exactly as labshare's own
server tells its kernels (`gpus.assign.static_env`): by the UUIDs NVML
gives on the host that runs hub-config, or where NVML does not answer by
index with `CUDA_DEVICE_ORDER=PCI_BUS_ID`, so they mean what `nvidia-smi`
shows.  Leases per kernel and idle reclaim are labshare's own and stay
behind.  Pure: the caller reads NVML once (`facts`) and passes a reader of
what it read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from labshare.config import GpuSettings, Limits
from labshare.gpus import assign
from labshare.gpus.nvml import GpuDevice, GpuReader
from labshare.render.site import span


def count(limits: Limits) -> int | None:
    """How many cards a member's server may hold: their card list, capped by `max_gpus`; None: no rule."""
    caps = [
        n
        for n in (None if limits.gpus is None else len(limits.gpus), limits.max_gpus)
        if n is not None
    ]
    return min(caps) if caps else None


def override(limits: Limits, spawner: str, cards: GpuReader) -> dict[str, Any]:
    """The spawner settings that carry one member's GPU rules, in that spawner's own trait names."""
    n = count(limits)
    if spawner == "slurm":
        return {"req_gres": f"gpu:{n}"} if n else {}
    if spawner == "kubernetes":
        return {"extra_resource_limits": {"nvidia.com/gpu": str(n)}} if n else {}
    if limits.gpus is None:
        return {}
    return {"environment": assign.static_env(limits.gpus, cards)}


def not_carried(
    settings: GpuSettings,
    members: Sequence[tuple[str, Limits]],
    spawner: str,
    devices: Sequence[GpuDevice] | None,
    nvml_says: str | None,
    host: str,
) -> list[str]:
    """One sentence for each part of the GPU policy this export leaves behind or can only approximate."""
    notes = []
    if settings.leased:
        notes.append(
            f'Per-kernel GPU leases ([gpus] assign = "per-kernel", per_kernel = {settings.per_kernel}, sharing = '
            f"\"{settings.sharing}\") are labshare's own and are not carried: under JupyterHub a member's server "
            "holds its cards for as long as it runs, and the kernels inside it share them."
        )
    if settings.idle_reclaim_after:
        notes.append(
            f"Idle GPU reclaim ([gpus] idle_reclaim_after, {span(settings.idle_reclaim_after)}) is labshare's own "
            "and is not carried: the hub's idle culler stops whole idle servers, never one kernel that sits on a card."
        )
    listed = [name for name, limits in members if limits.gpus]
    if spawner in ("slurm", "kubernetes") and listed:
        picker = "Slurm" if spawner == "slurm" else "the NVIDIA device plugin"
        notes.append(
            f"Which cards ({', '.join(listed)}'s [users.NAME].gpus) is not carried, only how many: "
            f"{picker} picks the cards."
        )
    if spawner == "systemd":
        capped = [
            name for name, limits in members if limits.max_gpus is not None and limits.gpus is None
        ]
        if capped:
            notes.append(
                f"max_gpus of {', '.join(capped)} is not carried: SystemdSpawner cannot cap a number of "
                "cards without naming them; list their cards with gpus = [...] instead."
            )
        cards = sorted({card for _, limits in members for card in limits.gpus or ()})
        if cards:
            notes.append(_naming(cards, devices, nvml_says, host))
            notes.append(
                "CUDA_VISIBLE_DEVICES is a convention, not a wall: a member's program can still open "
                "the other cards (SystemdSpawner's isolate_devices would hide every card)."
            )
    return notes


def _naming(
    cards: list[int], devices: Sequence[GpuDevice] | None, nvml_says: str | None, host: str
) -> str:
    """How the systemd export names cards, and why not by UUID where it cannot."""
    if devices is None:
        return (
            f"NVML does not answer on {host} ({nvml_says or 'it does not say why'}), so cards are named by "
            "index, with CUDA_DEVICE_ORDER=PCI_BUS_ID (the order nvidia-smi shows); run hub-config where "
            "NVML answers to name them by UUID."
        )
    named = f"Cards are named by UUID as NVML lists them on {host} now; run hub-config again after a card is changed"
    absent = sorted(set(cards) - {d.index for d in devices if d.uuid})
    if absent:
        which = ", ".join(f"GPU {card}" for card in absent)
        return (
            f"{named}.  NVML lists no {which}, which the site config names, so it is left out: "
            '"only these cards" never becomes another card.'
        )
    return named + "."
