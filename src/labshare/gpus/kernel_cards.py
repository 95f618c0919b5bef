"""One kernel's cards as Lab's status bar shows them: which, how much of each its processes hold, and how busy.

The figures come from what already exists: the kernel's live leases (only
the member's own, for a kernel of their own server), NVML's per-process
memory summed over the kernel's process and everything below it (a
notebook's `!python train.py` counts as the notebook's, as reclaim and
`ps` count it), and the reclaimer's deadline.  Pure: the Jupyter handler
(`jupyterside/gpu_status.py`) reads those and passes them in, so the
figures and the words are tested without a server.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from labshare.gpus.leases import Lease
from labshare.gpus.nvml import GpuDevice, GpuReading
from labshare.records.kernel_cards import KernelCard, KernelCards
from labshare.render.monitor import size

EVERY = 3.0  # seconds between two of Lab's questions: "every few seconds", cheap for the server
NOTHING_READ = GpuReading(devices=[])  # a kernel without leases needs no reading of the cards


def kernel_cards(
    kernel_id: str,
    *,
    leased: bool,
    held: Sequence[Lease] = (),
    reading: GpuReading = NOTHING_READ,
    pids: Collection[int] = (),
    reclaim_in: float | None = None,
    every: float = EVERY,
) -> KernelCards:
    """The answer for `kernel_id`, given its live leases `held`, one NVML reading and its processes' `pids`.

    `leased` False (the site does not lease per kernel): nothing to show, and
    Lab is told to stop asking, since a kernel then sees the server's cards.
    """
    if not leased:
        return KernelCards(kernel_id=kernel_id, leased=False, every=None)
    by_uuid = {d.uuid: d for d in reading.devices if d.uuid}
    cards = sorted(
        (_card(lease.card, by_uuid.get(lease.card), pids) for lease in held),
        key=lambda c: (c.index is None, c.index or 0, c.uuid),
    )
    countdown = None if reclaim_in is None or not cards else f"reclaim in {clock(reclaim_in)}"
    return KernelCards(
        kernel_id=kernel_id,
        leased=True,
        cards=tuple(cards),
        reclaim_in=reclaim_in if cards else None,
        gpu_unavailable=reading.unavailable if cards else None,
        text=" | ".join(card_text(c) for c in cards) if cards else "CPU only",
        countdown=countdown,
        title=title(cards, reading.unavailable, reclaim_in),
        every=every,
    )


def _card(uuid: str, device: GpuDevice | None, pids: Collection[int]) -> KernelCard:
    if device is None:
        return KernelCard(uuid=uuid)
    return KernelCard(
        uuid=uuid,
        index=device.index,
        name=device.name,
        memory_used_bytes=memory_of(device, pids),
        memory_total_bytes=device.memory_total_bytes,
        utilization_percent=device.utilization_percent,
    )


def memory_of(device: GpuDevice, pids: Collection[int]) -> int | None:
    """What `pids` hold on `device`: 0 when none of them is on it, None when the driver gives no figure."""
    amounts = [amount for pid, amount in device.processes.items() if pid in pids]
    if any(amount is None for amount in amounts):
        return None
    return sum(a for a in amounts if a is not None)


def short_name(name: str) -> str:
    """The board's name without the maker, which every card here shares: "A100-SXM4-80GB"."""
    return name.removeprefix("NVIDIA ").strip() or name


def card_text(card: KernelCard) -> str:
    """One card in the bar: "GPU 0 A100-SXM4-80GB · 11.7 GiB / 80.0 GiB · 35%"."""
    if card.index is None:
        return f"{card.uuid[:12]}…"  # "GPU-8f2c1a07…": leased, but NVML does not list it now
    parts = [f"GPU {card.index}" + (f" {short_name(card.name)}" if card.name else "")]
    if card.memory_total_bytes is not None:
        parts.append(f"{size(card.memory_used_bytes)} / {size(card.memory_total_bytes)}")
    if card.utilization_percent is not None:
        parts.append(f"{card.utilization_percent}%")
    return " · ".join(parts)


def clock(seconds: float) -> str:
    """A countdown as a clock shows it, "6:35" or "1:05:00"; "0:00" once due (the reclaim is under way)."""
    left = max(0, int(seconds + 0.5))
    hours, rest = divmod(left, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def title(cards: Sequence[KernelCard], unavailable: str | None, reclaim_in: float | None) -> str:
    """The tooltip: what the bar says, in sentences."""
    if not cards:
        return (
            "labshare leased this kernel no GPU, so it sees none. A project's kernels get cards "
            "with `gpus = N` under [tool.labshare] in its pyproject.toml."
        )
    lines = []
    for card in cards:
        if card.index is None:
            lines.append(f"{card.uuid}: leased to this kernel; NVML does not list this card now.")
            continue
        used = (
            "its driver does not say how much memory this kernel's processes hold"
            if card.memory_used_bytes is None and card.memory_total_bytes is not None
            else f"this kernel's processes hold {size(card.memory_used_bytes)} of its "
            f"{size(card.memory_total_bytes)}"
        )
        busy = (
            ""
            if card.utilization_percent is None
            else f"; the card is {card.utilization_percent}% busy"
        )
        lines.append(f"GPU {card.index}, {card.name} ({card.uuid}): {used}{busy}.")
    if unavailable:
        lines.append(f"No figures from the cards now: {unavailable}.")
    if reclaim_in is not None:
        lines.append(
            f"This kernel sits idle on its card: labshare shuts it down (its notebook saved) in "
            f"{clock(reclaim_in)} unless it runs something; run a cell to keep it."
        )
    return "\n".join(lines)
