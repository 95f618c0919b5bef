"""A kernel's leases over its life, as labshare's provisioner (inside the server) drives them.

The server takes a kernel's leases in its own name before the kernel
exists, so a card is never in use without a lease, then hands them to the
kernel's pid: from then on the lease lives exactly as long as the kernel,
through a server crash or restart, and is stale the moment the kernel dies.
A restart of the kernel hands the leases back to the server for the moment
between the old process and the new one, so the kernel keeps its cards.
Everything here is keyed by kernel id, which the kernel keeps across
server restarts, so a server that adopted a kernel can release its leases.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from labshare.errors import LabshareError
from labshare.gpus import assign, leases
from labshare.gpus.assign import GpuPolicy
from labshare.gpus.nvml import GpuReader, read_nvml


def start(
    policy: GpuPolicy, kernel_id: str, count: int | None, reader: GpuReader = read_nvml
) -> tuple[list[leases.Lease], dict[str, str]]:
    """The leases for a kernel about to start, and the environment that shows it those cards.

    `count` is what the kernel's project asks for (None: the site's
    `per_kernel`).  Leases this server kept over the kernel's restart are
    reused when they are still the right number.  Without per-kernel leases,
    nothing: the kernel inherits the server's cards.
    """
    if not policy.leased:
        return [], {}
    wanted = policy.per_kernel if count is None else count
    kept = [lease for lease in _mine(policy, kernel_id) if lease.live and lease.pid == os.getpid()]
    if kept and len(kept) == wanted:
        return kept, assign.env_of(kept, assign.read_cards(reader))
    release(policy, kernel_id)
    return assign.take(policy, wanted, leases.Holder(kernel_id=kernel_id), reader)


def hand_over(policy: GpuPolicy, held: Sequence[leases.Lease], pid: int) -> None:
    """Make the started kernel's process the holder; if any card was lost meanwhile, it gets none."""
    leases.hand_over(Path(policy.leases_dir), held, pid)


def keep_for_restart(policy: GpuPolicy, kernel_id: str) -> None:
    """Hold the kernel's leases in the server's name until the restarted kernel takes them over.

    The old process is gone by now, so its leases look stale: each is taken
    back unless another claimer took its card meanwhile (`rebind` checks),
    in which case the new kernel leases afresh.
    """
    if not policy.leased:
        return
    for lease in _mine(policy, kernel_id):
        with contextlib.suppress(LabshareError):
            leases.rebind(Path(policy.leases_dir), lease, os.getpid())


def release(policy: GpuPolicy, kernel_id: str) -> list[leases.Lease]:
    """Give back a kernel's leases: shut down, culled, died, or found dead by the next server."""
    if not policy.leased or not kernel_id:
        return []
    return leases.release(Path(policy.leases_dir), kernel_id=kernel_id)


def _mine(policy: GpuPolicy, kernel_id: str) -> list[leases.Lease]:
    """This member's leases for `kernel_id`, live or stale."""
    uid = os.geteuid()
    return [
        lease
        for lease in leases.leases(Path(policy.leases_dir))
        if lease.uid == uid and lease.kernel_id == kernel_id
    ]
