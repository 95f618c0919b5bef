"""GPU leases: which kernel (or `labshare run` command) may use which card, with no daemon.

A lease is one file per card in the leases directory (`claims.ClaimsDir`:
root-owned, sticky, 1777), holding JSON: user, uid, kernel id or run label
(for a kernel another Jupyter client started, the client's program name and
the project's folder name), pid, the pid's start time, since.  Never a
notebook path: anyone can read the directory.  The filesystem says who owns
a lease; its content must agree.

A lease is live while its pid runs with the recorded start time (so a
recycled pid is not mistaken for the holder) on this boot; otherwise, or when
its file is corrupted, it is stale and holds nothing.  A card is busy while
it has a live lease.  Exclusive leases are named `<card>.<generation>`: taking
a card creates the generation after the highest one there, so claimers racing
for a free or stale card race for one name and exactly one wins.  A stale
lease of another member cannot be removed by a non-root claimer (the sticky
bit), so it stays beside the new one until its owner's next claim, or root,
sweeps it.  After creating its file a claimer looks again and backs off if
another live lease is there; of two that created at once, the second always
sees the first, so two never both hold a card, whatever was removed meanwhile.

Shared leases (`sharing = "shared"`) are named `<card>.s<token>`, one per
kernel and any number per card; they only exclude exclusive leases, by the
same create-then-look rule.  Which card is placement's job (`place.py`).
All claimers must share one pid namespace, as NVML's pids already require.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import psutil

from labshare import proc
from labshare.claims import ClaimsDir, Entry
from labshare.errors import LabshareError
from labshare.gpus.place import Card, Describe, PlacementRules, Sharing, candidates, refusal
from labshare.records import RecordError, TooNew, Unreadable
from labshare.records.gpu_leases import LeaseRecord
from labshare.users import user_name

_NAME = re.compile(r"^(?P<slug>[A-Za-z0-9_-]+)\.(?:(?P<gen>\d{1,9})|s(?P<token>[0-9a-f]{12}))$")
_ATTEMPTS = 5
_MAX_GENERATION = 999_999_999


@dataclass(frozen=True)
class Holder:
    """Whom a new lease is for, and its process: a kernel of the Lab server (by id), a `labshare run`
    command (by label), or a kernel another Jupyter client started through the gate (by `client`,
    with its project as label)."""

    kernel_id: str | None = None
    label: str | None = None
    pid: int = field(default_factory=os.getpid)
    client: str | None = None

    def __post_init__(self) -> None:
        if self.kernel_id is None and self.label is None and self.client is None:
            raise ValueError("a lease holder needs a kernel id, a run label or a client")

    @property
    def kernel(self) -> bool:
        return self.kernel_id is not None or self.client is not None


@dataclass(frozen=True)
class Lease:
    """One lease file as read now; `stale` says in words why it holds nothing, None while live."""

    card: str  # the card's UUID (from the file name alone when the content is corrupted)
    name: str
    uid: int  # the owner, as the filesystem says
    user: str
    shared: bool
    kernel_id: str | None = None
    label: str | None = None
    client: str | None = None  # the program that started a kernel outside the Lab (papermill, code)
    pid: int | None = None
    pid_start: float | None = None
    since: float | None = None
    stale: str | None = None

    @property
    def live(self) -> bool:
        return self.stale is None


def directory(path: Path) -> ClaimsDir:
    return ClaimsDir(path, what="GPU leases directory", item="lease")


def leases(path: Path) -> list[Lease]:
    """Every lease in the directory, live and stale, corrupted ones included (never an error)."""
    return [lease for entry in directory(path).entries() if (lease := _lease(entry)) is not None]


def claim(
    path: Path,
    cards: Sequence[Card],
    policy: PlacementRules,
    holder: Holder,
    *,
    describe: Describe | None = None,
) -> list[Lease]:
    """Lease `policy.per_kernel` of `cards` for `holder`, all of them or none; a LabshareError if not.

    `cards` is what the caller read from NVML; `describe` may add how each
    holder uses its card to the refusal sentence ("idle 3 h", "busy").  Two
    claimers that each took part of what both need give it all back and try
    again after uneven pauses, so neither is refused while enough cards are free.
    """
    if policy.per_kernel <= 0:
        return []
    claims = directory(path).checked()
    uid = os.geteuid()
    record = _record(holder, uid, policy.sharing)
    for _ in range(_ATTEMPTS):
        order = candidates(
            cards, policy, [lease for lease in leases(path) if lease.live], uid, describe
        )
        try:
            taken = _take_all(claims, order, policy, record)
        except _Short:
            time.sleep(random.uniform(0.005, 0.05))
            continue
        sweep(path)
        return taken
    raise refusal(cards, policy, [lease for lease in leases(path) if lease.live], describe)


def release(path: Path, *, kernel_id: str | None = None, pid: int | None = None) -> list[Lease]:
    """Remove one's own leases held for `kernel_id` or by `pid` (root: anyone's); returns those removed."""
    if kernel_id is None and pid is None:
        raise ValueError("release needs a kernel id or a pid")
    claims, uid = directory(path), os.geteuid()
    removed = []
    for lease in leases(path):
        ours = uid == 0 or lease.uid == uid
        held = (kernel_id is not None and lease.kernel_id == kernel_id) or (
            pid is not None and lease.pid == pid
        )
        if ours and held and claims.remove(lease.name):
            removed.append(lease)
    return removed


def give_back(path: Path, held: Sequence[Lease]) -> None:
    """Remove these leases of one's own by name, whichever process holds them by now."""
    claims = directory(path)
    for lease in held:
        claims.remove(lease.name)


def hand_over(path: Path, held: Sequence[Lease], pid: int) -> list[Lease]:
    """`rebind` each lease to `pid`, all or none: if a card was lost meanwhile, all go back and the error says why."""
    try:
        return [rebind(path, lease, pid) for lease in held]
    except LabshareError:
        give_back(path, held)
        raise


def rebind(path: Path, lease: Lease, pid: int) -> Lease:
    """Hand one's own lease to `pid` (the kernel the server just started), keeping the card.

    If the card was taken over meanwhile (the old holder looked stale), the
    lease is given up and a LabshareError says who has the card now.
    """
    claims = directory(path)
    holder = Holder(kernel_id=lease.kernel_id, label=lease.label, pid=pid, client=lease.client)
    record = replace(
        _record(holder, lease.uid, "shared" if lease.shared else "exclusive"),
        since=lease.since or time.time(),
    )
    if not claims.replace(lease.name, _text(record, lease.card)):
        raise LabshareError(
            f"The lease on GPU {lease.card} is gone, so the kernel cannot keep that card."
        )
    others = [
        other for other in leases(path) if other.card == lease.card and other.name != lease.name
    ]
    taker = _blocker(others, "shared" if lease.shared else "exclusive")
    if taker is not None:
        claims.remove(lease.name)
        raise LabshareError(
            f"GPU {lease.card} was taken by {taker.user} while its lease was being handed to "
            f"process {pid}; the kernel gives it up."
        )
    return replace(lease, pid=pid, pid_start=record.pid_start)


def sweep(path: Path) -> list[Lease]:
    """Remove the stale leases this user may remove (their own; root: all); returns those removed."""
    claims, uid = directory(path), os.geteuid()
    return [
        lease
        for lease in leases(path)
        if not lease.live and (uid == 0 or lease.uid == uid) and claims.remove(lease.name)
    ]


class _Short(Exception):
    """Fewer cards could be leased than asked for; what was taken has been given back."""


@contextlib.contextmanager
def _all_or_nothing(claims: ClaimsDir) -> Iterator[list[Lease]]:
    """The leases taken so far; all removed again if taking the rest fails, however it fails."""
    taken: list[Lease] = []
    try:
        yield taken
    except BaseException:
        for lease in taken:
            claims.remove(lease.name)
        raise


def _take_all(
    claims: ClaimsDir, order: Sequence[Card], policy: PlacementRules, record: LeaseRecord
) -> list[Lease]:
    """`policy.per_kernel` leases from `order`, best first; `_Short` (and none kept) when fewer could be had."""
    with _all_or_nothing(claims) as taken:
        for card in order:
            if len(taken) == policy.per_kernel:
                break
            lease = _take(claims, card.uuid, policy.sharing, record)
            if lease is not None:
                taken.append(lease)
        if len(taken) < policy.per_kernel:
            raise _Short
    return list(taken)


def _take(claims: ClaimsDir, card: str, sharing: Sharing, record: LeaseRecord) -> Lease | None:
    """Lease one card, or None when a live lease keeps it (found before or just after creating ours)."""
    slug = _slug(card)
    text = _text(record, card)
    for _ in range(_ATTEMPTS):
        here = _on_card(claims, slug)
        if _blocker(here, sharing) is not None:
            return None
        name = (
            f"{slug}.s{secrets.token_hex(6)}"
            if sharing == "shared"
            else f"{slug}.{_next_generation(here)}"
        )
        if not claims.create(name, text):
            continue  # another claimer took this generation first; look again
        if (
            _blocker([lease for lease in _on_card(claims, slug) if lease.name != name], sharing)
            is None
        ):
            return _from_record(record, card, name)
        claims.remove(name)
    return None


def _on_card(claims: ClaimsDir, slug: str) -> list[Lease]:
    found = [_lease(entry) for entry in claims.entries() if entry.name.rpartition(".")[0] == slug]
    return [lease for lease in found if lease is not None]


def _blocker(here: Sequence[Lease], sharing: Sharing) -> Lease | None:
    """The live lease that keeps a new `sharing` lease off this card, if any."""
    for lease in here:
        if lease.live and (sharing == "exclusive" or not lease.shared):
            return lease
    return None


def _next_generation(here: Sequence[Lease]) -> int:
    """The generation after the highest, so racing claimers race for one name.

    Past nine digits (a name a member made by hand) any unused one will do:
    the look after creating, not the number, keeps a card to one holder.
    """
    used = {
        int(m["gen"]) for lease in here if (m := _NAME.match(lease.name)) and m["gen"] is not None
    }
    following = max(used, default=-1) + 1
    return following if following <= _MAX_GENERATION else min(set(range(len(used) + 1)) - used)


def _slug(card: str) -> str:
    """A card's UUID as a file name (old-style MIG UUIDs contain slashes)."""
    return re.sub(r"[^A-Za-z0-9-]", "_", card)


def _record(holder: Holder, uid: int, sharing: Sharing) -> LeaseRecord:
    """The content of a new lease for `holder`, on no card yet (`_text` names the card)."""
    try:
        started = psutil.Process(holder.pid).create_time()
    except psutil.NoSuchProcess:
        raise LabshareError(
            f"Process {holder.pid} is not running, so it cannot hold a GPU lease."
        ) from None
    return LeaseRecord(
        card="",
        mode=sharing,
        user=user_name(uid),
        uid=uid,
        kernel_id=holder.kernel_id,
        label=holder.label,
        client=holder.client,
        pid=holder.pid,
        pid_start=started,
        boot_time=psutil.boot_time(),
        boot_id=_boot_id(),
        since=time.time(),
    )


def _text(record: LeaseRecord, card: str) -> str:
    return json.dumps(replace(record, card=card).to_json(), sort_keys=True) + "\n"


def _from_record(record: LeaseRecord, card: str, name: str) -> Lease:
    return Lease(
        card=card,
        name=name,
        uid=record.uid,
        user=user_name(record.uid),
        shared=record.mode == "shared",
        kernel_id=record.kernel_id,
        label=record.label,
        client=record.client,
        pid=record.pid,
        pid_start=record.pid_start,
        since=record.since,
    )


def _lease(entry: Entry) -> Lease | None:
    """The lease an entry holds, judged live or stale; None for a name that is not a lease's."""
    match = _NAME.match(entry.name)
    if match is None:
        return None
    shared = match["token"] is not None
    try:
        record, problem = _parse(entry, match["slug"], shared)
    except TooNew:  # a newer labshare's lease: it holds its card; that labshare sweeps it
        return Lease(
            card=match["slug"], name=entry.name, uid=entry.uid, user=entry.user, shared=shared
        )
    if record is None:
        return Lease(
            card=match["slug"],
            name=entry.name,
            uid=entry.uid,
            user=entry.user,
            shared=shared,
            stale=f"corrupted: {problem}",
        )
    lease = replace(_from_record(record, record.card, entry.name), user=entry.user)
    return replace(lease, stale=_gone(record, entry.uid))


def _parse(entry: Entry, slug: str, shared: bool) -> tuple[LeaseRecord | None, str | None]:
    """The record in a lease file, or None and what is wrong with it; `TooNew` for a newer labshare's."""
    if entry.text is None:
        return None, entry.problem
    try:
        data = json.loads(entry.text)
    except ValueError:
        return None, "not JSON"
    if not isinstance(data, dict):
        return None, "not a JSON object"
    try:
        record = LeaseRecord.from_json(data, f"the GPU lease {entry.name}")
    except Unreadable as exc:
        return None, exc.problem
    except TooNew:
        raise
    except RecordError as exc:
        return None, str(exc)
    if _slug(record.card) != slug or record.mode != ("shared" if shared else "exclusive"):
        return None, "its content names another card or mode than its file name"
    if record.uid != entry.uid:
        return None, f"it says uid {record.uid} but belongs to uid {entry.uid}"
    if not 0 < record.pid < 2**31:
        return None, "no valid 'pid'"
    return record, None


def _gone(record: LeaseRecord, owner: int) -> str | None:
    """Why the lease's holder is no longer there, or None while it is.

    A pid this user may not inspect (another member's, under `hidepid`) but
    that exists counts as the holder: a wrong "live" refuses a kernel, a
    wrong "stale" would put two on one card.
    """
    pid = record.pid
    if record.boot_id != _boot_id():
        return "it was taken before the host last started"
    if not _exists(pid):
        return f"its process {pid} has ended"
    try:
        holder = psutil.Process(pid)
        if proc.gone(holder):
            return f"its process {pid} has ended"
        if not _same_start(
            holder.create_time() - psutil.boot_time(), record.pid_start - record.boot_time
        ):
            return f"pid {pid} now belongs to another process"
        if owner != 0 and holder.uids().real != owner:
            return f"pid {pid} is not {user_name(owner)}'s process"
    except psutil.NoSuchProcess:
        return None if _exists(pid) else f"its process {pid} has ended"
    except psutil.AccessDenied:
        return None
    return None


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _same_start(now: float, recorded: float) -> bool:
    """Whether two readings (seconds after boot) of a process's start time are the same start.

    psutil adds the boot time, which Linux gives in whole seconds and which
    can read one second apart in two processes; the clock ticks never change.
    Comparing against boot, not the wall clock, survives the clock being set.
    """
    diff = now - recorded
    return abs(diff - round(diff)) < 0.005 and abs(round(diff)) <= 1


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""
