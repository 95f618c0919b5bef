"""Text layouts of `labshare notify …` and `labshare admin notices …`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from labshare.render import ago
from labshare.render.monitor import duration


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "never"
    return ago(dt.datetime.fromtimestamp(epoch, dt.timezone.utc))


def _in(epoch: float) -> str:
    import time

    left = int(epoch - time.time())
    return f"in {left} s" if left > 0 else "now"


def _threshold(seconds: float | None) -> str:
    return duration(int(seconds)) if seconds else "any length"


def changed(result: Any) -> str:
    state = "on" if result.enabled else "off (`labshare notify on` turns them back on)"
    lines = [f"notices: {state}"]
    lines.append(f"your channel: {result.channel or 'none (the lab channels only, if any)'}")
    lines.append(f"cells and runs: longer than {_threshold(result.min_duration)}")
    lines.append(f"kinds: {', '.join(result.events)}")
    lines.append(f"kept in {result.config_file} (mode 0600)")
    return "\n".join(lines)


def tested(result: Any) -> str:
    def said(name: str, answer: str) -> str:
        if answer != "sent":
            return f"{name}: NOT delivered: {answer}"
        if name == "lab":  # the spool took it; root's service sends it on
            return "lab: handed to the lab's notices service (`labshare doctor` checks it runs)"
        return f"{name}: delivered"

    return "\n".join(said(name, answer) for name, answer in result.delivered.items())


def status(result: Any) -> str:
    lines = [
        f"notices: {'on' if result.enabled else 'off'}; cells and runs longer than "
        f"{_threshold(result.min_duration)}; kinds: {', '.join(result.events)}"
    ]
    if not result.channels:
        lines.append("no channel: set yours with `labshare notify set URL`")
    for ch in result.channels:
        lines.append(f"{ch.name}: {ch.target}")
        lines.append(
            f"  last delivery {_when(ch.last_sent)}; {ch.sent} sent, {ch.failures} failed tries, "
            f"{ch.expired} expired" + (f", {ch.unconfirmed} unconfirmed" if ch.unconfirmed else "")
        )
        if ch.last_error:
            retry = f"; next try {_in(ch.retry_at)}" if ch.retry_at else ""
            lines.append(f"  last failure {_when(ch.last_error_at)}: {ch.last_error}{retry}")
    lines.append(
        f"{result.pending} waiting to be sent"
        + (" (a sender is at work)" if result.sending else "")
    )
    return "\n".join(lines)
