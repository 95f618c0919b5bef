"""The cards a Slurm job may use, as NVML indices, so kernels inside it lease only those.

Slurm tells a job its GPUs two ways.  `SLURM_JOB_GPUS` (and, inside an
`srun` step, `SLURM_STEP_GPUS`) are the node's global GPU ids: the cards'
places in the node's gres.conf `File=` list, which is NVML's index order
only when the admin lists `/dev/nvidia*` in `nvidia-smi`'s order (or uses
`AutoDetect=nvml`).  `CUDA_VISIBLE_DEVICES` is what CUDA should use; with
`ConstrainDevices=yes` in cgroup.conf the job sees only its own cards, NVML
numbers them from 0 again, and the global ids no longer name them, while
`CUDA_VISIBLE_DEVICES` (local ids, or UUIDs at some sites) still does.  So
the global ids are used when NVML lists every one of them, and
`CUDA_VISIBLE_DEVICES` otherwise.  What neither names is never leased:
"only the job's cards" must not become another job's card.

Pure but for the reader, which the caller passes (the real NVML, or a
plain function in tests).
"""

from __future__ import annotations

from collections.abc import Mapping

from labshare.gpus.nvml import GpuDevice, GpuReader, NoGpu

JOB_VARIABLES = ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS")  # the more specific first
# What CUDA_VISIBLE_DEVICES holds when a job has no cards (older Slurm wrote NoDevFiles).
NO_CARDS = ("", "NoDevFiles", "-1")


def in_job(environ: Mapping[str, str]) -> bool:
    return bool(environ.get("SLURM_JOB_ID"))


def job_cards(environ: Mapping[str, str], reader: GpuReader) -> tuple[int, ...] | None:
    """The NVML indices of the cards Slurm gave this job; None where Slurm does not say.

    None: not inside a Slurm job, or a job on a node where Slurm does not
    hand out GPUs (no GPU variable at all), so the site's own rules apply.
    (): a job that was given no card, or whose cards NVML does not list.
    """
    if not in_job(environ):
        return None
    slurm_ids = _global_ids(environ)
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if slurm_ids is None and visible is None:
        return None
    try:
        devices = reader()
    except NoGpu:
        # NVML does not answer, so nothing will be leased anyway; say what Slurm said.
        return slurm_ids if slurm_ids is not None else _indices_only(visible or "")
    known = {d.index for d in devices}
    if slurm_ids is not None and set(slurm_ids) <= known:
        return slurm_ids
    if visible is not None:
        return _resolve(visible, devices)
    return ()


def _global_ids(environ: Mapping[str, str]) -> tuple[int, ...] | None:
    for name in JOB_VARIABLES:
        value = environ.get(name)
        if value is not None:
            return _indices_only(value)
    return None


def _indices_only(value: str) -> tuple[int, ...]:
    """The plain integers of a comma-separated list; anything else names no card here."""
    found = {int(word) for word in _words(value) if word.isdigit()}
    return tuple(sorted(found))


def _words(value: str) -> list[str]:
    value = value.strip()
    if value in NO_CARDS:
        return []
    return [word.strip() for word in value.split(",") if word.strip()]


def _resolve(value: str, devices: list[GpuDevice]) -> tuple[int, ...]:
    """CUDA_VISIBLE_DEVICES as NVML indices: an index NVML lists, or a (prefix of a) card's UUID.

    CUDA stops at the first entry it cannot use, and so does this: the
    cards after a bad entry are not the job's as far as CUDA is concerned.
    """
    by_index = {d.index for d in devices}
    found: list[int] = []
    for word in _words(value):
        index = _one(word, devices, by_index)
        if index is None:
            break
        found.append(index)
    return tuple(sorted(set(found)))


def _one(word: str, devices: list[GpuDevice], by_index: set[int]) -> int | None:
    if word.isdigit():
        return int(word) if int(word) in by_index else None
    matches = [d.index for d in devices if d.uuid and d.uuid.startswith(word)]
    return matches[0] if len(matches) == 1 else None
