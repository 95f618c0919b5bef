"""The lab's GPU policy as each spawner can carry it, and, said plainly, what a spawner takes away.

The hub spawns `labshare singleuser`, so inside each member's server the
kernels lease cards and idle ones are reclaimed as under `labshare start`.
What the hub decides is which cards the whole server may use: on one host
(SystemdSpawner) the site config's rules, read at spawn; Slurm by gres
(`gpu:N`, Slurm picks the cards, kernels lease among the job's);
Kubernetes by the device plugin's `nvidia.com/gpu` limit.  Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from labshare.config import GpuSettings, Limits
from labshare.errors import LabshareError


def count(limits: Limits) -> int | None:
    """How many cards a member's server may hold: their card list, capped by `max_gpus`; None: no rule."""
    caps = [
        n
        for n in (None if limits.gpus is None else len(limits.gpus), limits.max_gpus)
        if n is not None
    ]
    return min(caps) if caps else None


def override(limits: Limits, spawner: str) -> dict[str, Any]:
    """The spawner settings that carry one member's GPU rules, in that spawner's own trait names.

    On one host (SystemdSpawner) there are none: `labshare singleuser` applies
    the member's rules from the site config when the server starts, as
    `labshare start` does, so a changed card needs no new hub config.
    """
    n = count(limits)
    if spawner == "slurm":
        return {"req_gres": f"gpu:{n}"} if n else {}
    if spawner == "kubernetes":
        return {"extra_resource_limits": {"nvidia.com/gpu": str(n)}} if n else {}
    return {}


def not_carried(
    settings: GpuSettings,
    members: Sequence[tuple[str, Limits]],
    spawner: str,
    image: str | None = None,
) -> list[str]:
    """One sentence for each part of labshare's server a spawner cannot hold; refuse what cannot work at all.

    On one host (SystemdSpawner) nothing is lost: the hub runs `labshare
    singleuser`.  What is left is what the spawner's own machinery takes away.
    """
    notes = []
    listed = [name for name, limits in members if limits.gpus]
    if spawner in ("slurm", "kubernetes") and listed:
        picker = "Slurm" if spawner == "slurm" else "the NVIDIA device plugin"
        notes.append(
            f"Which cards ({', '.join(listed)}'s [users.NAME].gpus) is not carried, only how many: "
            f"{picker} picks the cards, and kernels lease among those."
        )
    if spawner == "slurm":
        notes.append(
            "Kernels survive a crash of the member's server only while its Slurm job runs: a job that "
            "ends (scancel, time limit) ends every process in it, kernels included."
        )
        notes.append(
            "`labshare ps`, `top` and `gpus` on the hub's host do not see servers on compute nodes; "
            "run them on the node (`ssh NODE labshare gpus`)."
        )
    if spawner == "kubernetes":
        if not image:
            if settings.leased:
                raise LabshareError(
                    'Per-kernel GPU leases ([gpus] assign = "per-kernel") need labshare inside the '
                    "single-user image on Kubernetes; build one from docker/Dockerfile and name it in "
                    '[hub] image, or set [gpus] assign = "off".'
                )
            notes.append(
                "labshare's server parts are not carried (idle GPU reclaim, kernels that survive a "
                "restart, output kept while no browser is open, the member's default kernel, Lab's "
                "news pop-up off): the single-user image has no labshare; build one from "
                "docker/Dockerfile and name it in [hub] image."
            )
        else:
            notes.append(
                "Kernels do not survive a restart of the member's pod: Kubernetes replaces the pod "
                "and every process in it."
            )
    return notes
