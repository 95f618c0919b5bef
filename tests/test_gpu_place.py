"""Placement as the pure choice it is: which cards a kernel may get, and the sentence when none.

`place.py` decides over plain data (the cards NVML reported, the live leases),
so every rule is tested here without a GPU, a leases directory or a second
account; tests/test_gpu_leases.py shows the same choice made by real processes
of real members racing for the cards.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from labshare.errors import LabshareError
from labshare.gpus.place import Card, PlacementRules, candidates, refusal, usable

pytestmark = pytest.mark.quick  # pure: scripts/test runs it first, as an ordinary user

GIB = 1 << 30
ME, ALICE, BOB = 1000, 1001, 1002


@dataclass(frozen=True)
class Held:
    """A live lease, as placement sees one."""

    card: str
    uid: int
    user: str
    shared: bool = False
    pid: int | None = None
    since: float | None = None


def cards(count: int, used_gib: tuple[int, ...] = ()) -> list[Card]:
    used = list(used_gib) + [0] * count
    return [Card(i, f"GPU-{i:04d}", 80 * GIB, used[i] * GIB) for i in range(count)]


def why(cards_: list[Card], rules: PlacementRules, live: list[Held], describe=None) -> str:
    with pytest.raises(LabshareError) as refused:
        candidates(cards_, rules, live, ME, describe)
    return str(refused.value)


def test_exclusive_takes_only_free_cards_most_free_memory_first() -> None:
    four = cards(4, used_gib=(60, 8, 30, 1))
    held = [Held(four[3].uuid, ALICE, "alice")]
    assert [c.index for c in candidates(four, PlacementRules(), held, ME)] == [1, 2, 0]


def test_shared_skips_exclusive_holders_and_prefers_free_memory_then_fewer_sharers() -> None:
    three = cards(3)
    live = [Held(three[0].uuid, ALICE, "alice"), Held(three[1].uuid, BOB, "bob", shared=True)]
    assert [c.index for c in candidates(three, PlacementRules(sharing="shared"), live, ME)] == [
        2,
        1,
    ]


def test_the_members_cards_only_each_uuid_once() -> None:
    four = cards(4)
    mig_repeat = [*four, Card(1, four[1].uuid, 80 * GIB, 0)]
    assert [c.index for c in usable(mig_repeat, PlacementRules(gpus=frozenset({1, 3})))] == [1, 3]


def test_no_card_free_names_who_holds_which_and_how() -> None:
    three = cards(3)
    live = [Held(three[0].uuid, ALICE, "alice"), Held(three[1].uuid, BOB, "bob")]
    describe = {"alice": "idle 3 h", "bob": "busy"}
    assert why(three, PlacementRules(gpus=frozenset({0, 1})), live, lambda h: describe[h.user]) == (
        "No GPU is free for this kernel: GPU 0 is leased to alice (idle 3 h), GPU 1 to bob (busy); "
        "see `labshare gpus`."
    )


def test_two_cards_asked_one_free() -> None:
    two = cards(2)
    assert why(two, PlacementRules(per_kernel=2), [Held(two[1].uuid, ALICE, "alice")]) == (
        "This kernel needs 2 GPUs but only 1 is free: GPU 1 is leased to alice; see `labshare gpus`."
    )


def test_an_exclusive_kernel_is_refused_by_cards_others_share() -> None:
    two = cards(2)
    live = [
        Held(c.uuid, uid, name, shared=True)
        for c in two
        for uid, name in ((ALICE, "alice"), (BOB, "bob"))
    ]
    assert why(two, PlacementRules(), live) == (
        "No GPU is free for this kernel: GPU 0 is shared by alice and bob, GPU 1 is shared by alice and bob; "
        "see `labshare gpus`."
    )


def test_the_policy_limits_are_their_own_sentences() -> None:
    three = cards(3)
    assert why(three, PlacementRules(max_gpus=1), [Held(three[0].uuid, ME, "me")]) == (
        "You already hold 1 GPU and may hold at most 1 at once ([gpus] max_gpus), so this kernel cannot get "
        "1 GPU; shut down a kernel or command that uses one first (see `labshare gpus`)."
    )
    assert why(three, PlacementRules(per_kernel=2, gpus=frozenset({2})), []) == (
        "This kernel asks for 2 GPUs but you may use only 1 (GPU 2); ask for fewer in the project's `gpus` "
        "setting, or ask an admin for more."
    )
    assert why(three, PlacementRules(per_kernel=2, gpus=frozenset({2}), for_command=True), []) == (
        "This command asks for 2 GPUs but you may use only 1 (GPU 2); ask for fewer with `--gpus`, "
        "or ask an admin for more."
    )
    assert (
        why([], PlacementRules(), [])
        == "This kernel asks for 1 GPU but NVML shows no GPU on this host."
    )


def test_enough_free_cards_but_lost_races_is_try_again() -> None:
    assert str(refusal(cards(2), PlacementRules(), [])) == (
        "No GPU could be leased for this kernel: other kernels were taking the same cards at the same moment; "
        "try again, or see `labshare gpus`."
    )
