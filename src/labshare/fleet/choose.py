"""Which server `labshare connect GROUP --gpus N` opens, and the sentence when none has room.

Pure: the replies in, a `Choice` out (or `NoRoom` with one sentence).  The
order: the server where the member's JupyterLab already runs (moving it
would lose the kernels); else a server where the member can get N cards now
under that server's own rules (its answer says how many), least loaded per
CPU first, the group's order breaking ties.  When none has room, the best
option is named from what the answers show the member: their own kernel's
reclaim time, a server that reclaims idle cards and a card whose holder NVML
saw idle, else the card held longest.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from labshare.errors import LabshareError
from labshare.fleet.ask import Reply
from labshare.records.fleet import HereAnswer


@dataclass(frozen=True)
class Choice:
    """The server to open, and why, in words for the one line `connect` says."""

    host: str
    reason: str


class NoRoom(LabshareError):
    """No server of the group can give the member N cards now; nothing was started."""


def per_cpu(answer: HereAnswer) -> float:
    return answer.load.load1 / max(1, answer.load.cpus)


def choose(replies: list[Reply], gpus: int, group: str, now: float | None = None) -> Choice:
    answered = [(r, r.answer) for r in replies if r.answer is not None]
    for reply, answer in answered:
        if answer.mine.running:
            return Choice(reply.host, "your JupyterLab already runs there")
    fits = [(r, a) for r, a in answered if gpus == 0 or a.can_get >= gpus]
    if fits:
        order = {r.host: i for i, r in enumerate(replies)}
        reply, answer = min(fits, key=lambda ra: (per_cpu(ra[1]), order[ra[0].host]))
        room = (
            f"{answer.can_get} GPU{'s' if answer.can_get != 1 else ''} free for you"
            if gpus
            else "you asked for no GPU"
        )
        least = " and the least loaded" if len(fits) > 1 else ""
        return Choice(
            reply.host,
            f"{room}{least} (load {answer.load.load1:g} on {answer.load.cpus} CPUs)",
        )
    raise NoRoom(no_room(replies, gpus, group, time.time() if now is None else now))


def no_room(replies: list[Reply], gpus: int, group: str, now: float) -> str:
    """The one sentence: nobody has room, and the best option the answers show."""
    want = f"{gpus} free GPU{'s' if gpus != 1 else ''}"
    answered = [r for r in replies if r.answer is not None]
    if not answered:
        if len(replies) == 1 and replies[0].message:
            return replies[0].message
        why = ", ".join(f"{r.host}: {r.error}" for r in replies)
        return f"No server of {group} answered ({why}); check them with `labshare doctor {group}`."
    head = f"No server of {group} has {want} for you now"
    option = best_option(answered, now)
    tail = "; see the table, try again later, or connect with `--gpus 0`."
    return f"{head}; {option}{tail}" if option else f"{head}{tail}"


def best_option(answered: list[Reply], now: float) -> str | None:
    """The soonest known way to a card, in the words of the answers, or None when none is known."""
    own = [
        (card.reclaim_at, r.host, card.index)
        for r in answered
        if r.answer
        for card in r.answer.cards
        if card.reclaim_at is not None
    ]
    if own:
        at, host, index = min(own)
        return (
            f"best option: {host} frees GPU {index} in {_minutes(at - now)}, "
            "when your idle kernel there is reclaimed"
        )
    idle = [
        (r.answer.idle_reclaim_after or 0, r.host, card.index, card.holder, card.holder_use)
        for r in answered
        if r.answer and r.answer.idle_reclaim_after
        for card in r.answer.cards
        if card.holder and not card.mine and (card.holder_use or "").startswith("idle")
    ]
    if idle:
        after, host, index, holder, use = min(idle)
        return (
            f"best option: {host}, where GPU {index} is leased to {holder} ({use}) and idle cards "
            f"are reclaimed after {_minutes(after)}"
        )
    held = [
        (r.host, card.index, card.holder, card.holder_use)
        for r in answered
        if r.answer
        for card in r.answer.cards
        if card.holder and not card.mine
    ]
    if held:
        host, index, holder, use = held[0]
        how = f" ({use})" if use else ""
        return f"best option: ask {holder} about GPU {index} on {host}{how}"
    mine = [r.host for r in answered if r.answer and r.answer.mine.gpus]
    if mine:
        return f"best option: shut down one of your own kernels on {mine[0]} that holds a card"
    return None


def _minutes(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    if minutes < 120:
        return f"{minutes} min"
    return f"{round(minutes / 60)} h"
