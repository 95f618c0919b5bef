"""`python -m labshare.notify.emit KIND WHAT [SUBJECT]`: a notice from a process that must stay small.

The supervisor lives as long as the member's server and loads only the
ground floor, so it does not read configs or write notices itself: it
starts this, which does, and which wakes the sender.
"""

from __future__ import annotations

import sys

from labshare.notify import events
from labshare.paths import Paths


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: python -m labshare.notify.emit KIND WHAT [SUBJECT]", file=sys.stderr)
        return 2
    event = events.Event(argv[0], argv[1], argv[2] if len(argv) == 3 else "")
    events.emit(Paths.from_env(), event, say=lambda line: print(line, file=sys.stderr))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
