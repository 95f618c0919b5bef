"""Which free port of 127.0.0.1 to take when none was asked for: one no outgoing connection takes first.

A port picked now is bound a moment later by another program (Jupyter, or
`ssh -L` on a laptop).  One from the system's ephemeral range, which is what
binding port 0 gives, can meanwhile become the local end of any outgoing
connection; then that program stops with "address in use".  Ports below the
range are given out only when asked for by number.  Standard library only:
`connect` runs on every kind of laptop.
"""

from __future__ import annotations

import random
from collections.abc import Callable

PICK_FROM = 20000  # above the ports services and habits take (8080, 8888, 10000...)
EPHEMERAL_FROM = 32768  # Linux's default start; Windows and macOS start theirs at 49152


def ephemeral_from() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return EPHEMERAL_FROM


def pick(free: Callable[[int], bool], tries: int = 50) -> int | None:
    """A random port below the ephemeral range that `free` accepts; None when none did (then bind 0)."""
    low = ephemeral_from()
    if low <= PICK_FROM + 1:
        return None
    chance = random.SystemRandom()
    for _ in range(tries):
        port = chance.randrange(PICK_FROM, low)
        if free(port):
            return port
    return None
