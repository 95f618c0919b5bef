"""What `labshare notify status` and `notify test` say: the channel, the last delivery, failures, expiries.

Read from the sender's own files (the tally and the log), never by asking
the sender, which runs only while something is owed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from labshare.errors import LabshareError
from labshare.notify import events
from labshare.notify.queue import channel_tally, held
from labshare.paths import Paths


@dataclass(frozen=True)
class ChannelStatus:
    name: str  # "own": the member's; "lab": handed to the spool for the lab's channels
    target: str  # the URL with its secrets hidden, or the spool
    sent: int
    failures: int
    expired: int
    unconfirmed: int
    last_sent: float | None
    last_error: str | None
    last_error_at: float | None
    retry_at: float | None


@dataclass(frozen=True)
class NotifyStatus:
    enabled: bool
    min_duration: float | None
    events: list[str]
    lab_channels: bool
    pending: int
    sending: bool  # a sender runs now
    channels: list[ChannelStatus] = field(default_factory=list)


def status(paths: Paths) -> NotifyStatus:
    from labshare.notify import channels as apprise_channels

    member, site = events.settings(paths)
    queue = events.outbox(paths)
    tally = queue.tally() if queue.root.exists() else None
    targets: list[tuple[str, str]] = []
    if member.url:
        targets.append(("own", apprise_channels.redacted(member.url)))
    if site.lab_channels:
        targets.append(("lab", f"the lab's channels, through {site.spool_dir}"))
    shown = []
    for name, target in targets:
        counts = channel_tally(tally, name) if tally else None
        shown.append(
            ChannelStatus(
                name=name,
                target=target,
                sent=counts.sent if counts else 0,
                failures=counts.failures if counts else 0,
                expired=counts.expired if counts else 0,
                unconfirmed=counts.unconfirmed if counts else 0,
                last_sent=counts.last_sent if counts else None,
                last_error=counts.last_error if counts else None,
                last_error_at=counts.last_error_at if counts else None,
                retry_at=counts.next_try if counts and counts.streak else None,
            )
        )
    sending = False
    if queue.root.exists():
        with held(queue.lock_file, wait=False) as free:
            sending = not free
    return NotifyStatus(
        enabled=member.enabled,
        min_duration=member.min_duration,
        events=list(member.events),
        lab_channels=site.lab_channels,
        pending=len(queue.keys()),
        sending=sending,
        channels=shown,
    )


@dataclass(frozen=True)
class TestResult:
    id: str
    delivered: dict[str, str]  # channel -> "sent" or why not


def test(paths: Paths, timeout: float = 30.0) -> TestResult:
    """Send a test notice through the same outbox and sender as every other; wait for each channel's answer."""
    member, site = events.settings(paths)
    if not (member.url or site.lab_channels):
        raise LabshareError(
            "You have no channel to test: set one with `labshare notify set URL` "
            "(e.g. ntfy://ntfy.sh/YOUR-TOPIC), or ask the admin about the lab's channels."
        )
    event = events.Event("test", "reached you: this is a test notice", "labshare notify test")
    notice = events.notice_for(paths, event)
    queue = events.outbox(paths).ensure()
    queue.add(notice.id, notice)
    from labshare.notify import sender

    sender.wake(paths)
    names = (["own"] if member.url else []) + (["lab"] if site.lab_channels else [])
    deadline = time.monotonic() + timeout
    answers: dict[str, str] = {}
    while time.monotonic() < deadline and len(answers) < len(names):
        queue.load_log()
        tally = queue.tally()
        for name in names:
            event_seen = queue.known.get((notice.id, name))
            if event_seen == "sent":
                answers[name] = "sent"
            elif event_seen == "failed":
                answers[name] = channel_tally(tally, name).last_error or "failed"
        time.sleep(0.1)
    for name in names:
        answers.setdefault(name, f"no answer within {timeout:.0f} s; see `labshare notify status`")
    return TestResult(notice.id, answers)
