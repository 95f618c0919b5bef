"""The delivery pass both senders run: each owed notice to each of its channels, once.

A channel that fails waits before its next try, longer after each failure
in a row (1 s, 2 s, 4 s ... 30 s at most), and the wait is kept in the
tally, so a restarted sender does not hammer a channel that is down; the
notices behind it keep their order.  A notice older than `expire_after`
is dropped for the channels that never had it, and counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from labshare.notify.queue import Queue, channel_tally, with_channel
from labshare.records.notice import ChannelTally, Notice

MAX_BACKOFF = 30.0


def backoff(streak: int) -> float:
    """Seconds before the next try after `streak` failures in a row."""
    return min(2.0 ** max(streak - 1, 0), MAX_BACKOFF)


@dataclass(frozen=True)
class Channel:
    """Somewhere a notice goes: `name` keys the log and the tally; `send` returns None or why it failed."""

    name: str
    send: Callable[[Notice], str | None]


ChannelsFor = Callable[[str, Notice], list[Channel]]


class Engine:
    def __init__(
        self,
        queue: Queue,
        channels_for: ChannelsFor,
        expire_after: float | None,
        clock: Callable[[], float] = time.time,
    ):
        self.queue = queue
        self.channels_for = channels_for
        self.expire_after = expire_after
        self.clock = clock
        self.tally = queue.tally()
        for key, channel in queue.load_log(compact=True):  # a try an earlier sender never finished
            counts = channel_tally(self.tally, channel)
            self.tally = with_channel(
                self.tally, channel, replace(counts, unconfirmed=counts.unconfirmed + 1)
            )
            queue.note(key, channel, "unconfirmed")
        queue.save_tally(self.tally)

    def step(self) -> float | None:
        """Deliver what is due now; seconds until something is due again, None when nothing is owed."""
        owed = self.queue.pending()
        if not owed:
            return None
        wait: float | None = None
        changed = False
        for key, notice in owed:
            left = 0
            for channel in self.channels_for(key, notice):
                if self.queue.done(key, channel.name):
                    continue
                now = self.clock()
                counts = channel_tally(self.tally, channel.name)
                if self.expire_after and now - notice.at > self.expire_after:
                    self.queue.note(key, channel.name, "expired")
                    counts = replace(counts, expired=counts.expired + 1)
                elif counts.next_try > now:
                    left += 1
                    due = counts.next_try - now
                    wait = due if wait is None else min(wait, due)
                    continue
                else:
                    counts = self._try(key, notice, channel, counts)
                    if not self.queue.done(key, channel.name):
                        left += 1
                        due = backoff(counts.streak)
                        wait = due if wait is None else min(wait, due)
                self.tally = with_channel(self.tally, channel.name, counts)
                changed = True
            if not left:
                self.queue.finish(key)
        if changed:
            self.queue.save_tally(self.tally)
        if not self.queue.has_pending():
            return None
        return max(wait or 0.0, 0.0)

    def _try(
        self, key: str, notice: Notice, channel: Channel, counts: ChannelTally
    ) -> ChannelTally:
        self.queue.note(key, channel.name, "try", sync=True)
        try:
            problem = channel.send(notice)
        except Exception as exc:  # a channel's bug must not stop the others
            problem = f"{type(exc).__name__}: {exc}"
        now = self.clock()
        if problem is None:
            self.queue.note(key, channel.name, "sent")
            return replace(counts, sent=counts.sent + 1, last_sent=now, streak=0, next_try=0.0)
        streak = counts.streak + 1
        counts = replace(
            counts,
            failures=counts.failures + 1,
            last_error=problem,
            last_error_at=now,
            streak=streak,
            next_try=now + backoff(streak),
        )
        # the reason on disk before the line that says it failed: `notify test` reads it on that line
        self.tally = with_channel(self.tally, channel.name, counts)
        self.queue.save_tally(self.tally)
        self.queue.note(key, channel.name, "failed")
        self.queue.known.pop((key, channel.name), None)  # owed still: tried again after the wait
        return counts
