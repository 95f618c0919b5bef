"""What Lab's status bar shows for one kernel: `GET /api/labshare/kernels/<id>/gpus`.

labshare's hand-written Lab plugin reads this answer every few seconds, and
a plugin cached in a tab can outlive the server that sent it an older
format, so the answer is versioned like every other document labshare
exchanges.  It carries the figures (for scripts and tests) and the text
the bar shows, made on the server so the plugin formats nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from labshare.records.base import Record


@dataclass(frozen=True)
class KernelCard(Record):
    """One card the kernel leases, and how much of it the kernel's processes use now."""

    VERSION: ClassVar[int] = 1

    uuid: str
    index: int | None = None  # NVML's index; None when NVML does not list the card now
    name: str | None = None
    # the bytes the kernel's processes hold on the card; None where the driver does not say
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    utilization_percent: int | None = None  # the whole card's, as NVML reports it


@dataclass(frozen=True)
class KernelCards(Record):
    """One kernel's cards, the reclaim countdown while a warning holds, and the status bar's text."""

    VERSION: ClassVar[int] = 1

    kernel_id: str
    leased: bool  # whether this server leases cards per kernel at all; False: Lab stops asking
    cards: tuple[KernelCard, ...] = ()
    reclaim_in: float | None = (
        None  # seconds until idle reclaim shuts the kernel down, while warned
    )
    gpu_unavailable: str | None = None  # why NVML gave no figures
    text: str = ""  # "GPU 0 A100-SXM4-80GB · 11.7 GiB / 80.0 GiB · 35%", or "CPU only"
    countdown: str | None = None  # "reclaim in 6:35", shown apart so the bar can mark it
    title: str = ""  # the tooltip: the same in whole sentences
    every: float | None = None  # seconds until Lab asks again; None: never again

    @classmethod
    def upgrade(cls, data: dict[str, Any], version: int) -> dict[str, Any]:
        """The cards as records of their own (JSON holds them as plain objects)."""
        cards = data.get("cards", [])
        if not isinstance(cards, list):
            return data
        return {
            **data,
            "cards": [KernelCard.from_json(c, "a card in a kernel's GPU answer") for c in cards],
        }
