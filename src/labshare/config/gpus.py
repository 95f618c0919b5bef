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

from labshare.config.values import duration, fail, unknown

GPU_KEYS = {"assign", "per_kernel", "sharing", "idle_reclaim_after", "reclaim_warning", "leases_dir"}
ASSIGN = ("off", "per-kernel")
SHARING = ("exclusive", "shared")
DEFAULT_LEASES_DIR = "/var/lib/labshare/gpus"


@dataclass(frozen=True)
class GpuSettings:
    """The site's `[gpus]` table, validated; the defaults are today's behaviour."""

    assign: str = "off"
    per_kernel: int = 1
    sharing: str = "exclusive"
    idle_reclaim_after: float | None = None  # seconds; None: idle kernels keep their cards
    reclaim_warning: float | None = 900.0  # seconds of notice before a reclaim
    leases_dir: Path = Path(DEFAULT_LEASES_DIR)

    @property
    def leased(self) -> bool:
        return self.assign == "per-kernel"


def parse_gpus(path: Path, table: Mapping[str, Any]) -> GpuSettings:
    unknown(path, "gpus", table, GPU_KEYS)
    out: dict[str, Any] = {}
    for key, choices in (("assign", ASSIGN), ("sharing", SHARING)):
        if key in table:
            if table[key] not in choices:
                raise fail(path, f"gpus.{key}", f"must be one of {', '.join(map(repr, choices))}, got {table[key]!r}")
            out[key] = table[key]
    if "per_kernel" in table:
        out["per_kernel"] = gpu_count(path, "gpus.per_kernel", table["per_kernel"])
    for key in ("idle_reclaim_after", "reclaim_warning"):
        if key in table:
            out[key] = duration(path, f"gpus.{key}", table[key])
    if "leases_dir" in table:
        value = table["leases_dir"]
        if not isinstance(value, str) or not value.startswith("/"):
            raise fail(path, "gpus.leases_dir", "must be an absolute path such as \"/var/lib/labshare/gpus\"")
        out["leases_dir"] = Path(value)
    return GpuSettings(**out)


def gpu_count(path: Path, key: str, value: object) -> int:
    """A number of cards: 0 (CPU only) or more."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise fail(path, key, f"must be a whole number of GPUs (0 for none), got {value!r}")
    return value
