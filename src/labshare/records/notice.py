"""A notice: one event worth telling a member of, and the sender's memory of what it did with each.

A notice is written to disk (the member's outbox, then perhaps the site's
spool) before anything is sent, with an id, so a sender that restarts
knows what is still owed and nothing is sent twice.  Its one line of text
is made from the fields here, by whoever sends it, so the root service can
check the fields against the file's owner rather than trust a sentence.
The text holds no token and no secret: the link is the member's connect
command.  `Tally` is a sender's counts per channel, for `notify status`,
with the backoff that survives a restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from labshare.records.base import Record


def span(seconds: float) -> str:
    """'42 s', '3 min 5 s', '2 h 4 min': short enough for a phone's lock screen."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} d {hours % 24} h"


@dataclass(frozen=True)
class Notice(Record):
    """One event: who, what (a notebook or a command), on which host, what happened, how long."""

    VERSION: ClassVar[int] = 1

    id: str
    kind: str  # one of KINDS
    user: str
    host: str
    what: str  # "finished", "failed: ValueError: bad shape", "kernel died (out of memory)"
    subject: str = ""  # the notebook's path, the command, "your JupyterLab"
    seconds: float | None = None  # how long the cell or command ran, when that is known
    link: str = ""  # where the member's Lab is reached: `labshare connect USER@HOST`
    at: float = 0.0  # when it happened (epoch seconds)

    def line(self) -> str:
        """The notice as sent: one line a phone shows whole."""
        took = f" after {span(self.seconds)}" if self.seconds is not None else ""
        subject = f"{self.subject} " if self.subject else ""
        link = f" · {self.link}" if self.link else ""
        return f"{self.user}@{self.host}: {subject}{self.what}{took}{link}"

    def title(self) -> str:
        return f"labshare on {self.host}: {self.what.split(':', 1)[0]}"

    def severity(self) -> str:
        """apprise's notice type, so a phone or a chat shows a failure as one at a glance:
        "failure", "warning", "success" or "info" (a test)."""
        if self.kind == "kernel_died" or "failed" in self.what or "gave up" in self.what:
            return "failure"
        if self.kind in ("reclaim", "server"):
            return "warning"
        return "info" if self.kind == "test" else "success"


@dataclass(frozen=True)
class ChannelTally(Record):
    """What one channel did: for `notify status`, and its backoff, kept across restarts."""

    VERSION: ClassVar[int] = 1

    sent: int = 0
    failures: int = 0  # failed tries, each retried later
    expired: int = 0  # notices dropped after `expire_after`, never delivered here
    unconfirmed: int = 0  # a try a sender died during: never repeated (at most once)
    last_sent: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    streak: int = 0  # failures in a row, for the backoff
    next_try: float = 0.0


@dataclass(frozen=True)
class Tally(Record):
    """Every channel of one sender, by name ("own", "lab", or a lab channel's short hash)."""

    VERSION: ClassVar[int] = 1

    channels: dict[str, object] = field(default_factory=dict)
    refused: int = 0  # spool files whose content named someone other than their owner
