"""One line of `top --json`: a snapshot in the shapes `ps --json` and `gpus --json` already have.

A script that reads `ps --json` reads `servers` here unchanged, and a card
carries the figures a card of `gpus --json` carries (without its leases,
which are `gpus`'s own view), plus who uses it, as the text face's USED BY
column shows; so there is one shape of a server and of a card, not two.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from labshare.monitor.leased import Unleased
from labshare.monitor.processes import Server, Snapshot
from labshare.render.monitor import card_users, sort_key


@dataclass
class CardUse:
    """A card's figures, named as in `gpus --json`, and the members whose servers use it."""

    index: int
    uuid: str | None
    name: str
    utilization_percent: int | None
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    users: list[str] = field(default_factory=list)


@dataclass
class TopFrame:
    """What one refresh of `top` shows, biggest first by `sort`, as the table does."""

    taken_at: str
    sort: str
    servers: list[Server]
    cards: list[CardUse]
    gpu_unavailable: str | None
    unleased: list[Unleased]  # only where the site leases GPUs, as the text face warns


def frame(snap: Snapshot, sort: str) -> TopFrame:
    key = sort_key(sort)
    servers = sorted(snap.servers, key=key, reverse=True) if key else list(snap.servers)
    users = card_users(snap)
    cards = [
        CardUse(
            d.index,
            d.uuid,
            d.name,
            d.utilization_percent,
            d.memory_used_bytes,
            d.memory_total_bytes,
            users.get(d.index, []),
        )
        for d in snap.gpus
    ]
    return TopFrame(
        snap.taken_at,
        sort,
        servers,
        cards,
        snap.gpu_unavailable,
        list(snap.unleased) if snap.leasing else [],
    )
