"""Which cards a new kernel may get: a pure choice over plain data, and the sentence when none.

The caller reads the cards from NVML and the leases from the leases
directory; this module only decides, so every rule (the member's cards,
`max_gpus`, exclusive or shared) can be tested without a GPU or a file, and
the provisioner, `labshare run` and `labshare gpus` all decide the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from labshare.errors import LabshareError

Sharing = Literal["exclusive", "shared"]


@dataclass(frozen=True)
class Card:
    """One card as NVML reported it; indexes are for people, the UUID is what programs are told."""

    index: int
    uuid: str
    memory_total: int
    memory_used: int

    @property
    def memory_free(self) -> int:
        return max(0, self.memory_total - self.memory_used)


@dataclass(frozen=True)
class PlacementRules:
    """The site's `[gpus]` rules as they apply to one member and one kernel."""

    per_kernel: int = 1
    sharing: Sharing = "exclusive"
    gpus: frozenset[int] | None = (
        None  # the member's cards by index ([users.NAME] gpus); None: every card
    )
    max_gpus: int | None = None  # cards one member may hold at once; None: no cap
    for_command: bool = False  # a `labshare run` command asks, not a kernel: the sentences say so

    @property
    def asker(self) -> str:
        return "this command" if self.for_command else "this kernel"


class Held(Protocol):
    """What placement needs to know of a live lease (leases.Lease has these)."""

    @property
    def card(self) -> str: ...
    @property
    def uid(self) -> int: ...
    @property
    def user(self) -> str: ...
    @property
    def shared(self) -> bool: ...
    @property
    def pid(self) -> int | None: ...
    @property
    def since(self) -> float | None: ...


Describe = Callable[[Held], "str | None"]
"""Says how a holder uses its card ("idle 3 h", "busy"); optional, for the refusal sentence."""


def usable(cards: Iterable[Card], policy: PlacementRules) -> list[Card]:
    """The cards this member may use, each UUID once (a MIG listing can repeat a parent)."""
    seen: set[str] = set()
    found = []
    for card in sorted(cards, key=lambda c: c.index):
        if card.uuid in seen or (policy.gpus is not None and card.index not in policy.gpus):
            continue
        seen.add(card.uuid)
        found.append(card)
    return found


def candidates(
    cards: Sequence[Card],
    policy: PlacementRules,
    live: Sequence[Held],
    uid: int,
    describe: Describe | None = None,
) -> list[Card]:
    """The cards to try, best first; a LabshareError saying why when they cannot be enough.

    Exclusive: only cards nobody holds, most free memory first (a script
    outside Jupyter may use a card no lease names).  Shared: every card no
    kernel holds exclusively, by most free memory, then fewest sharers.
    """
    mine = usable(cards, policy)
    _check_policy(cards, mine, policy)
    held = {lease.card for lease in live if lease.uid == uid}
    if policy.max_gpus is not None and len(held) + policy.per_kernel > policy.max_gpus:
        raise LabshareError(
            f"You already hold {_count(len(held))} and may hold at most {policy.max_gpus} at once "
            f"([gpus] max_gpus), so {policy.asker} cannot get {_count(policy.per_kernel)}; shut down a kernel "
            "or command that uses one first (see `labshare gpus`)."
        )
    on_card = _by_card(live)
    if policy.sharing == "exclusive":
        free = [c for c in mine if not on_card.get(c.uuid)]
        order = sorted(free, key=lambda c: (-c.memory_free, c.index))
    else:
        free = [c for c in mine if not any(not h.shared for h in on_card.get(c.uuid, []))]
        order = sorted(free, key=lambda c: (-c.memory_free, len(on_card.get(c.uuid, [])), c.index))
    if len(order) < policy.per_kernel:
        raise refusal(cards, policy, live, describe)
    return order


def refusal(
    cards: Sequence[Card],
    policy: PlacementRules,
    live: Sequence[Held],
    describe: Describe | None = None,
) -> LabshareError:
    """The one sentence a member reads when no card is free: who holds which of theirs.

    In shared mode only an exclusive holder keeps a kernel off a card, so only those are named.
    """
    mine = usable(cards, policy)
    on_card = _by_card(h for h in live if policy.sharing == "exclusive" or not h.shared)
    parts: list[str] = []
    leased_before = False
    for card in mine:
        holders = on_card.get(card.uuid, [])
        if not holders:
            continue
        names = _and(sorted(_who(h, describe) for h in holders))
        if all(h.shared for h in holders):
            parts.append(f"GPU {card.index} is shared by {names}")
            leased_before = False
        else:
            parts.append(f"GPU {card.index} {'to' if leased_before else 'is leased to'} {names}")
            leased_before = True
    free = len(mine) - len(parts)
    if free >= policy.per_kernel:
        return LabshareError(
            f"No GPU could be leased for {policy.asker}: other kernels were taking the same "
            "cards at the same moment; try again, or see `labshare gpus`."
        )
    head = (
        f"No GPU is free for {policy.asker}"
        if policy.per_kernel == 1
        else f"{policy.asker.capitalize()} needs {policy.per_kernel} GPUs but {_free(free)}"
    )
    return LabshareError(f"{head}: {', '.join(parts)}; see `labshare gpus`.")


def _by_card(live: Iterable[Held]) -> dict[str, list[Held]]:
    on_card: dict[str, list[Held]] = {}
    for lease in live:
        on_card.setdefault(lease.card, []).append(lease)
    return on_card


def _check_policy(cards: Sequence[Card], mine: list[Card], policy: PlacementRules) -> None:
    if policy.per_kernel <= len(mine):
        return
    if not cards:
        raise LabshareError(
            f"{policy.asker.capitalize()} asks for {_count(policy.per_kernel)} but NVML shows no GPU on this host."
        )
    which = (
        f"only {len(mine)} ({', '.join(f'GPU {c.index}' for c in mine)})"
        if mine
        else "none of this host's"
    )
    fewer = "with `--gpus`" if policy.for_command else "in the project's `gpus` setting"
    raise LabshareError(
        f"{policy.asker.capitalize()} asks for {_count(policy.per_kernel)} but you may use {which}; "
        f"ask for fewer {fewer}, or ask an admin for more."
    )


def _who(holder: Held, describe: Describe | None) -> str:
    how = describe(holder) if describe else None
    return f"{holder.user} ({how})" if how else holder.user


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _count(n: int) -> str:
    return f"{n} GPU" if n == 1 else f"{n} GPUs"


def _free(n: int) -> str:
    return "none is free" if n == 0 else ("only 1 is free" if n == 1 else f"only {n} are free")
