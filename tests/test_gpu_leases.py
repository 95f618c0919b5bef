"""GPU leases between real processes of real Unix users, in a real root-owned sticky directory.

Each claimer is a Python process running as its own member (created with
useradd), holding its leases for as long as it lives, as a kernel would; the
cards come from the stand-in NVML through the real pynvml where placement
depends on what the driver says.  Tests run as root, so the sticky bit's
"only the owner may remove it" is exercised by the members, not by the test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Member, need_root
from fake_gpus import FakeNvml, fake_nvml, leases_dir, nvml_stub

from labshare.claims import ClaimsDir
from labshare.errors import LabshareError
from labshare.gpus import leases
from labshare.gpus.place import Card, PlacementRules

WORKER = r"""
import json, sys
from pathlib import Path
from labshare.errors import LabshareError
from labshare.gpus import leases, place

def nvml_cards():
    import pynvml as n
    n.nvmlInit()
    try:
        found = []
        for i in range(n.nvmlDeviceGetCount()):
            h = n.nvmlDeviceGetHandleByIndex(i)
            m = n.nvmlDeviceGetMemoryInfo(h)
            found.append(place.Card(i, n.nvmlDeviceGetUUID(h), m.total, m.used))
        return found
    finally:
        n.nvmlShutdown()

def claim(order):
    cards = nvml_cards() if order["cards"] == "nvml" else [place.Card(*c) for c in order["cards"]]
    policy = dict(order.get("policy", {}))
    if policy.get("gpus") is not None:
        policy["gpus"] = frozenset(policy["gpus"])
    rules, holder = place.PlacementRules(**policy), leases.Holder(kernel_id=order["kernel_id"])
    got = leases.claim(Path(order["dir"]), cards, rules, holder)
    return {"cards": [l.card for l in got], "names": [l.name for l in got]}

print(json.dumps({"ready": True}), flush=True)
for line in iter(sys.stdin.readline, ""):
    order = json.loads(line)
    try:
        if order["op"] == "claim":
            answer = claim(order)
        else:
            answer = {"released": [l.name for l in leases.release(Path(order["dir"]), kernel_id=order["kernel_id"])]}
    except LabshareError as exc:
        answer = {"error": str(exc)}
    print(json.dumps(answer), flush=True)
"""


class Claimer:
    """One real process (of `member`, or of root) that claims and releases leases when told to."""

    def __init__(
        self, member: Member | None, directory: Path, env: dict[str, str] | None = None
    ) -> None:
        self.member, self.directory = member, directory
        argv = [sys.executable, "-c", WORKER]
        pipes = {
            "stdin": subprocess.PIPE,
            "stdout": subprocess.PIPE,
            "stderr": subprocess.PIPE,
            "text": True,
        }
        if member is None:
            self.proc = subprocess.Popen(argv, env={**os.environ, **(env or {})}, **pipes)
        else:
            self.proc = member.popen(argv, env={**member.env, **(env or {})}, **pipes)
        assert self.answer() == {"ready": True}

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def user(self) -> str:
        return self.member.name if self.member else "root"

    def send(self, **order: object) -> None:
        assert self.proc.stdin
        self.proc.stdin.write(json.dumps({"dir": str(self.directory), **order}) + "\n")
        self.proc.stdin.flush()

    def answer(self) -> dict:
        assert self.proc.stdout and self.proc.stderr
        line = self.proc.stdout.readline()
        assert line, f"claimer {self.pid} died: {self.proc.stderr.read()}"
        return json.loads(line)

    def claim(self, cards: object, kernel_id: str = "k", **policy: object) -> dict:
        self.send(op="claim", cards=cards, kernel_id=kernel_id, policy=policy)
        return self.answer()

    def release(self, kernel_id: str = "k") -> list[str]:
        self.send(op="release", kernel_id=kernel_id)
        return self.answer()["released"]

    def kill(self) -> None:
        """SIGKILL, by pid, as a crash would: no release, no cleanup."""
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=30)


@pytest.fixture
def claimers(make_user) -> Iterator:
    """Factory: `claimers(n_users, per_user, directory)` → live Claimer processes, ended afterwards."""
    made: list[Claimer] = []
    users: list[Member] = []

    def make(
        directory: Path, users_needed: int = 1, per_user: int = 1, env: dict[str, str] | None = None
    ):
        need_root("members of their own, to show the sticky bit keeps their leases apart")
        while len(users) < users_needed:
            users.append(make_user())
        group = [
            Claimer(users[u], directory, env) for u in range(users_needed) for _ in range(per_user)
        ]
        made.extend(group)
        return group

    try:
        yield make
    finally:
        for claimer in made:
            claimer.close()


@pytest.fixture
def own_leases_dir(leases_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`leases_dir` for a test of one member's own leases: as root the real one; as anyone else the same
    directory, their own, with the check that it is root's waived (it guards other members' leases)."""
    if os.geteuid() != 0:
        monkeypatch.setattr(ClaimsDir, "checked", lambda self: self)
    return leases_dir


def plain_cards(count: int, used_gib: tuple[int, ...] = ()) -> list[list]:
    used = list(used_gib) + [0] * count
    return [
        [i, f"GPU-{i:04d}-aaaa-bbbb-cccc-dddddddddddd", 80 << 30, used[i] << 30]
        for i in range(count)
    ]


def on_disk(directory: Path) -> dict[str, int]:
    """Every entry in the leases directory (scratch files included) and its owner's uid."""
    return {p.name: p.lstat().st_uid for p in directory.iterdir()}


def sentence(holders: list[tuple[int, str]]) -> str:
    first, *rest = holders
    parts = [f"GPU {first[0]} is leased to {first[1]}"] + [f"GPU {i} to {user}" for i, user in rest]
    return f"No GPU is free for this kernel: {', '.join(parts)}; see `labshare gpus`."


def test_twenty_claims_by_five_members_at_once_on_four_cards(claimers, leases_dir: Path) -> None:
    group = claimers(leases_dir, users_needed=5, per_user=4)
    cards = plain_cards(4)
    for n, claimer in enumerate(group):
        claimer.send(op="claim", cards=cards, kernel_id=f"kernel-{n}", policy={})
    answers = [(claimer, claimer.answer()) for claimer in group]
    won = [(c, a) for c, a in answers if "cards" in a]
    assert len(won) == 4, answers
    assert sorted(card for _, a in won for card in a["cards"]) == sorted(c[1] for c in cards)
    index = {c[1]: c[0] for c in cards}
    holders = sorted((index[a["cards"][0]], c.user) for c, a in won)
    refusals = [a["error"] for _, a in answers if "error" in a]
    assert refusals == [sentence(holders)] * 16
    assert on_disk(leases_dir) == {a["names"][0]: c.member.uid for c, a in won}
    live = [lease for lease in leases.leases(leases_dir) if lease.live]
    assert Counter(lease.card for lease in live) == Counter(c[1] for c in cards)
    assert {(lease.kernel_id, lease.pid) for lease in live} == {
        (f"kernel-{group.index(c)}", c.pid) for c, _ in won
    }


def test_a_sigkilled_holders_lease_is_taken_over_and_its_owner_sweeps_it(
    claimers, leases_dir: Path
) -> None:
    alice, bob = claimers(leases_dir, users_needed=2)
    card = plain_cards(1)
    first = alice.claim(card)["names"]
    assert first == [f"{card[0][1]}.0"]
    assert "error" in bob.claim(card)
    alice.kill()
    (stale,) = leases.leases(leases_dir)
    assert stale.stale == f"its process {alice.pid} has ended" and stale.user == alice.user
    assert bob.claim(card)["names"] == [f"{card[0][1]}.1"]
    # bob could not remove alice's file (the sticky bit); it stays, stale, beside his live lease
    assert on_disk(leases_dir) == {first[0]: alice.member.uid, f"{card[0][1]}.1": bob.member.uid}
    assert bob.release() == [f"{card[0][1]}.1"]
    (alice_again,) = claimers(leases_dir, users_needed=1)
    assert alice_again.claim(card)["names"] == [f"{card[0][1]}.1"]
    assert on_disk(leases_dir) == {f"{card[0][1]}.1": alice.member.uid}  # her own stale lease swept


def test_members_racing_for_one_stale_lease_exactly_one_wins(claimers, leases_dir: Path) -> None:
    card = plain_cards(1)
    holder = claimers(leases_dir, users_needed=1)[0]
    assert "cards" in holder.claim(card)
    for round_ in range(
        4
    ):  # the holder is SIGKILLed; four members (its own among them) race for the card
        holder.kill()
        racers = claimers(leases_dir, users_needed=4)
        for racer in racers:
            racer.send(op="claim", cards=card, kernel_id=f"round-{round_}", policy={})
        answers = [(racer, racer.answer()) for racer in racers]
        (winner,) = [racer for racer, a in answers if "cards" in a]
        assert [a["error"] for _, a in answers if "error" in a] == [
            sentence([(0, winner.user)])
        ] * 3
        assert [lease.pid for lease in leases.leases(leases_dir) if lease.live] == [winner.pid]
        assert answers[racers.index(winner)][1]["names"] == [f"{card[0][1]}.{round_ + 1}"]
        for racer in racers:
            if racer is not winner:
                racer.close()
        holder = winner


CORRUPT = {
    "garbage": b"\x00\xffnot json at all",
    "empty": b"",
    "a list": b"[1, 2, 3]",
    "no pid": json.dumps({"card": "X", "mode": "exclusive"}).encode(),
}


def test_corrupted_lease_files_are_reported_and_taken_over_never_a_crash(
    claimers, leases_dir: Path
) -> None:
    alice, bob = claimers(leases_dir, users_needed=2)
    cards = plain_cards(len(CORRUPT) + 3)
    names = [f"{c[1]}.0" for c in cards]
    for name, data in zip(names, CORRUPT.values(), strict=False):
        (leases_dir / name).write_bytes(data)
        os.chown(leases_dir / name, alice.member.uid, -1)
    extra = names[len(CORRUPT) :]
    os.symlink("/etc/shadow", leases_dir / extra[0])
    os.mkfifo(leases_dir / extra[1])
    forged = {
        "card": cards[-1][1],
        "mode": "exclusive",
        "user": "root",
        "uid": 0,
        "pid": 1,
        "pid_start": 0.0,
        "boot_time": 0.0,
        "boot_id": "",
        "since": 0.0,
        "kernel_id": "k",
        "label": None,
    }
    (leases_dir / extra[2]).write_text(json.dumps(forged))
    os.chown(leases_dir / extra[2], alice.member.uid, -1)
    found = {lease.name: lease.stale for lease in leases.leases(leases_dir)}
    assert found == {
        names[0]: "corrupted: not JSON",
        names[1]: "corrupted: not JSON",
        names[2]: "corrupted: not a JSON object",
        names[3]: "corrupted: no valid 'user'",
        extra[0]: "corrupted: not a regular file",
        extra[1]: "corrupted: not a regular file",
        extra[2]: f"corrupted: it says uid 0 but belongs to uid {alice.member.uid}",
    }
    for i, card in enumerate(cards):
        assert bob.claim([card], kernel_id=f"k{i}")["names"] == [f"{card[1]}.1"]
    assert len([lease for lease in leases.leases(leases_dir) if lease.live]) == len(cards)


def test_claiming_two_cards_is_all_or_nothing(claimers, leases_dir: Path) -> None:
    alice, bob, carol = claimers(leases_dir, users_needed=3)
    two = plain_cards(2)
    assert "cards" in alice.claim([two[1]])
    refused = bob.claim(two, per_kernel=2)
    assert refused == {
        "error": "This kernel needs 2 GPUs but only 1 is free: GPU 1 is leased to "
        f"{alice.user}; see `labshare gpus`."
    }
    assert list(on_disk(leases_dir).values()) == [alice.member.uid]
    alice.release()
    four = plain_cards(4)
    for round_ in range(
        10
    ):  # three claimers, 2 cards each, 4 cards: partial takes must be given back
        racers = (alice, bob, carol)
        for racer in racers:
            racer.send(op="claim", cards=four, kernel_id=f"r{round_}", policy={"per_kernel": 2})
        answers = [(racer, racer.answer()) for racer in racers]
        won = [(r, a) for r, a in answers if "cards" in a]
        assert len(won) == 2 and all(len(a["cards"]) == 2 for _, a in won), answers
        assert sorted(c for _, a in won for c in a["cards"]) == sorted(c[1] for c in four)
        assert sorted(on_disk(leases_dir).values()) == sorted([r.member.uid for r, _ in won] * 2)
        for racer, _ in won:
            assert len(racer.release(f"r{round_}")) == 2
        assert on_disk(leases_dir) == {}


def test_shared_cards_go_to_the_most_free_memory_as_nvml_reports_it(
    claimers, leases_dir: Path, fake_nvml: FakeNvml
) -> None:
    for card, used in zip(fake_nvml.cards, (60000, 8000, 30000, 1000), strict=True):
        card.used_mib = used
    fake_nvml.write()
    alice, bob, carol = claimers(leases_dir, users_needed=3, env=fake_nvml.env)
    assert alice.claim("nvml")["cards"] == [fake_nvml.cards[3].uuid]  # exclusive: the emptiest card
    shared = {"sharing": "shared"}
    assert bob.claim("nvml", "b1", **shared)["cards"] == [
        fake_nvml.cards[1].uuid
    ]  # 3 is alice's alone
    assert carol.claim("nvml", "c1", **shared)["cards"] == [
        fake_nvml.cards[1].uuid
    ]  # shared, still most free
    fake_nvml.cards[1].used_mib = 70000  # the two kernels on card 1 allocated
    fake_nvml.write()
    assert carol.claim("nvml", "c2", **shared)["cards"] == [fake_nvml.cards[2].uuid]
    assert bob.claim("nvml", "b2", **shared, per_kernel=2)["cards"] == [
        fake_nvml.cards[2].uuid,
        fake_nvml.cards[0].uuid,
    ]
    exclusive = alice.claim("nvml", "a2", gpus=[1, 2])
    both = " and ".join(sorted([bob.user, carol.user]))
    assert exclusive == {
        "error": f"No GPU is free for this kernel: GPU 1 is shared by {both}, "
        f"GPU 2 is shared by {both}; see `labshare gpus`."
    }
    by_card = Counter(lease.card for lease in leases.leases(leases_dir) if lease.live)
    assert by_card == {
        fake_nvml.cards[3].uuid: 1,
        fake_nvml.cards[1].uuid: 2,
        fake_nvml.cards[2].uuid: 2,
        fake_nvml.cards[0].uuid: 1,
    }


def test_refusals_name_who_holds_what_and_the_policy_limits(claimers, leases_dir: Path) -> None:
    alice, bob = claimers(leases_dir, users_needed=2)
    cards = plain_cards(3)
    assert "cards" in alice.claim(cards[:1]) and "cards" in bob.claim(cards[1:2])
    as_cards = [Card(*c) for c in cards]
    describe = {alice.user: "idle 3 h", bob.user: "busy"}
    with pytest.raises(LabshareError) as refused:
        leases.claim(
            leases_dir,
            as_cards,
            PlacementRules(gpus=frozenset({0, 1})),
            leases.Holder(kernel_id="root-k"),
            describe=lambda lease: describe[lease.user],
        )
    assert str(refused.value) == (
        f"No GPU is free for this kernel: GPU 0 is leased to {alice.user} (idle 3 h), "
        f"GPU 1 to {bob.user} (busy); see `labshare gpus`."
    )
    assert alice.claim(cards, "k2", max_gpus=1) == {
        "error": (
            "You already hold 1 GPU and may hold at most 1 at once ([gpus] max_gpus), so this kernel cannot get "
            "1 GPU; shut down a kernel or command that uses one first (see `labshare gpus`)."
        )
    }
    assert alice.claim(cards, "k3", per_kernel=2, gpus=[2]) == {
        "error": (
            "This kernel asks for 2 GPUs but you may use only 1 (GPU 2); ask for fewer in the project's `gpus` "
            "setting, or ask an admin for more."
        )
    }
    assert alice.claim([], "k4") == {
        "error": "This kernel asks for 1 GPU but NVML shows no GPU on this host."
    }
    assert alice.claim(cards, "cpu-only", per_kernel=0) == {"cards": [], "names": []}


def test_release_by_kernel_and_by_pid_only_ones_own(claimers, leases_dir: Path) -> None:
    alice, bob = claimers(leases_dir, users_needed=2)
    cards = plain_cards(3)
    alice.claim(cards, "a1")
    alice.claim(cards, "a2")
    bob.claim(cards, "b1")
    assert bob.release("a1") == []  # not his: the sticky bit would refuse, so he does not try
    assert [name.split(".")[0] for name in alice.release("a1")] == [cards[0][1]]
    assert sorted(lease.kernel_id for lease in leases.leases(leases_dir)) == ["a2", "b1"]
    assert [lease.kernel_id for lease in leases.release(leases_dir, pid=bob.pid)] == [
        "b1"
    ]  # root: anyone's
    with pytest.raises(ValueError):
        leases.release(leases_dir)


def test_a_lease_handed_to_the_kernel_lives_and_dies_with_it(own_leases_dir: Path) -> None:
    leases_dir = own_leases_dir
    cards = [Card(*c) for c in plain_cards(1)]
    (lease,) = leases.claim(leases_dir, cards, PlacementRules(), leases.Holder(kernel_id="kern"))
    kernel = subprocess.Popen(["sleep", "600"])
    try:
        moved = leases.rebind(leases_dir, lease, kernel.pid)
        (listed,) = leases.leases(leases_dir)
        assert (listed.pid, listed.live, listed.since, moved.pid) == (
            kernel.pid,
            True,
            lease.since,
            kernel.pid,
        )
    finally:
        kernel.kill()
        kernel.wait()
    (listed,) = leases.leases(leases_dir)
    assert listed.stale == f"its process {kernel.pid} has ended"
    assert [lease.name for lease in leases.sweep(leases_dir)] == [listed.name]


@pytest.mark.quick
def test_a_recycled_pid_or_an_earlier_boot_does_not_hold_a_card(own_leases_dir: Path) -> None:
    leases_dir = own_leases_dir
    cards = [Card(*c) for c in plain_cards(2)]
    taken = leases.claim(
        leases_dir, cards, PlacementRules(per_kernel=2), leases.Holder(label="run python train.py")
    )
    for lease, change in zip(
        taken, ({"pid_start": taken[0].pid_start - 5.25}, {"boot_id": "another-boot"}), strict=True
    ):
        path = leases_dir / lease.name
        path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    assert [lease.stale for lease in leases.leases(leases_dir)] == [
        f"pid {os.getpid()} now belongs to another process",
        "it was taken before the host last started",
    ]


@pytest.mark.quick
def test_a_generation_past_nine_digits_falls_back_to_an_unused_name(own_leases_dir: Path) -> None:
    """Made by hand, such a name must not push the next lease out of what `leases()` can read."""
    leases_dir = own_leases_dir
    cards = [Card(*c) for c in plain_cards(1)]
    (leases_dir / f"{cards[0].uuid}.999999999").write_text("left by hand")
    (lease,) = leases.claim(leases_dir, cards, PlacementRules(), leases.Holder(kernel_id="k"))
    assert lease.name == f"{cards[0].uuid}.0"
    assert [(found.name, found.live) for found in leases.leases(leases_dir)] == [
        (lease.name, True)
    ]  # its owner swept


@pytest.mark.parametrize("mode", ["missing", 0o755, 0o777, "not root's", "a symlink"])
def test_a_bad_leases_directory_is_one_sentence_with_the_install_line(
    leases_dir: Path, request, mode
) -> None:
    if mode != "missing":  # each other mode is the one fault of a directory otherwise root's
        need_root("a root-owned leases directory")
    target = leases_dir
    if mode == "missing":
        target = leases_dir / "absent"
    elif mode == "not root's":
        os.chown(leases_dir, request.getfixturevalue("make_user")().uid, -1)
    elif mode == "a symlink":
        target = leases_dir.parent / "link"
        target.symlink_to(leases_dir)
    else:
        leases_dir.chmod(mode)
    with pytest.raises(LabshareError) as bad:
        leases.claim(
            target,
            [Card(*c) for c in plain_cards(1)],
            PlacementRules(),
            leases.Holder(kernel_id="k"),
        )
    if mode == "missing":
        assert str(bad.value) == (
            f"The GPU leases directory {target} does not exist; an admin must create it once "
            f"with `sudo install -d -m 1777 {target}`."
        )
    else:
        assert str(bad.value) == (
            f"The GPU leases directory {target} must be owned by root with mode 1777 (sticky) "
            "so nobody can remove another's lease; fix it with "
            f"`sudo install -d -m 1777 -o root {target}`."
        )
    assert not any(leases_dir.iterdir())


def test_a_leases_directory_a_member_cannot_write_is_refused_before_any_claim(
    claimers, leases_dir: Path
) -> None:
    leases_dir.chmod(0o1755)
    (alice,) = claimers(leases_dir)
    assert alice.claim(plain_cards(1)) == {
        "error": (
            f"The GPU leases directory {leases_dir} must be owned by root with mode 1777 (sticky) so nobody can remove "
            f"another's lease; fix it with `sudo install -d -m 1777 -o root {leases_dir}`."
        )
    }


def test_an_exclusive_and_a_shared_claimer_racing_for_one_card_never_both_get_it(
    claimers, leases_dir: Path
) -> None:
    """They create different names, so only the look after creating keeps them apart (as during a mode switch)."""
    solo, sharer = claimers(leases_dir, users_needed=2)
    card = plain_cards(1)
    wins = Counter()
    for round_ in range(20):
        solo.send(op="claim", cards=card, kernel_id=f"s{round_}", policy={})
        sharer.send(op="claim", cards=card, kernel_id=f"s{round_}", policy={"sharing": "shared"})
        answers = {"exclusive": solo.answer(), "shared": sharer.answer()}
        won = [kind for kind, a in answers.items() if "cards" in a]
        assert len(won) <= 1, answers
        wins.update(won)
        live = [lease for lease in leases.leases(leases_dir) if lease.live]
        assert [lease.shared for lease in live] == [kind == "shared" for kind in won]
        solo.release(f"s{round_}")
        sharer.release(f"s{round_}")
    assert sum(wins.values()) >= 10, wins  # both backing off at once is allowed, but rare
