"""`[gpus]` of the site config: how the lab's cards are shared out.

With `assign = "off"` (the default) nothing changes from a plain server: a
member's `gpus = [..]` list is all the policy there is.  With
`assign = "per-kernel"` every kernel (and every `labshare run`) takes a lease
on its cards before it starts, so two members never land on one card by
accident and an idle kernel's card can come back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labshare.config import schema

DEFAULT_LEASES_DIR = str(schema.key("gpus", "leases_dir").default)


@dataclass(frozen=True)
class GpuSettings:
    """The site's `[gpus]` table, validated; the defaults are today's behaviour."""

    assign: str = schema.default("gpus", "assign")
    per_kernel: int = schema.default("gpus", "per_kernel")
    sharing: str = schema.default("gpus", "sharing")
    # None: cards stay
    idle_reclaim_after: float | None = schema.default("gpus", "idle_reclaim_after")
    reclaim_warning: float | None = schema.default("gpus", "reclaim_warning")  # seconds of notice
    leases_dir: Path = schema.default("gpus", "leases_dir")

    @property
    def leased(self) -> bool:
        return self.assign == "per-kernel"


def parse_gpus(path: Path, table: Mapping[str, Any]) -> GpuSettings:
    return GpuSettings(**schema.parse(path, "gpus", table))
