"""What `labshare fleet` prints: every server's answer (or why none) as one plain document.

`--json` is this, field for field: `{"group", "servers": [{"host",
"reachable", "error", "cards": [...], "load", "mine", ...}]}`, the server's
answer (records/fleet.py) flattened under the group's name for the host.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from labshare.fleet.ask import Reply


@dataclass
class FleetReport:
    """The group and one entry per server, in the group's order."""

    group: str
    servers: list[dict[str, Any]] = field(default_factory=list)


def build(group: str, replies: list[Reply]) -> FleetReport:
    servers = []
    for reply in replies:
        entry: dict[str, Any] = {
            "host": reply.host,
            "reachable": reply.reachable,
            "error": reply.error,
            "message": reply.message,
            "seconds": reply.seconds,
        }
        if reply.answer is not None:
            data = reply.answer.to_json()
            data.pop("version", None)
            entry |= {
                "hostname": data.pop("host"),
                **data,
            }
        else:
            entry |= {"cards": [], "load": None, "mine": None}
        servers.append(entry)
    return FleetReport(group=group, servers=servers)
