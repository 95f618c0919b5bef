"""How each holder uses its card, for the sentence a member reads when no card is free.

"GPU 0 is leased to alice (idle, leased 3 h ago), GPU 1 to bob (busy)"
tells the member whom to ask, and it says only what `nvidia-smi` already
shows everyone: whether the holder's processes used the card in NVML's
recent samples.  How long a kernel has sat idle is its own server's to
know (the reclaim sweep), so the sentence gives the lease's age instead.
Everything is read once, on the first holder asked about: a refusal is
rare, and a kernel start that gets its card never pays for this.
"""

from __future__ import annotations

import time

from labshare.gpus.nvml import NoGpu, UseReading, read_process_use
from labshare.gpus.place import Describe, Held
from labshare.proc import family
from labshare.render.monitor import duration

RECENT_SECONDS = 60.0  # NVML keeps fewer samples than this on every driver seen; all of them count


def describer() -> Describe:
    """A `place.Describe` reading NVML's per-process samples when first asked, then from memory."""
    reading: list[UseReading | None] = []

    def describe(holder: Held) -> str | None:
        if not reading:
            try:
                reading.append(read_process_use(time.time() - RECENT_SECONDS))
            except NoGpu:
                reading.append(None)
        use = reading[0]
        if use is None or holder.pid is None or holder.card in use.unknown:
            return None  # the driver cannot say; better nothing than a wrong word
        mine = family(holder.pid)
        if any(s.pid in mine and s.card == holder.card and s.sm_percent > 0 for s in use.samples):
            return "busy"
        return (
            f"idle, leased {duration(int(time.time() - holder.since))} ago"
            if holder.since
            else "idle"
        )

    return describe
