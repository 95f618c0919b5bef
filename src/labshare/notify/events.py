"""The producers' one call: is this event worth a notice to this member, and if so, write it and wake the sender.

Called by the Jupyter server (cells, kernels, reclaim), the supervisor
(crashes) and `labshare run`.  It reads the member's `[notify]` and the
site's at each event, so `labshare notify off` counts at once, without a
restart.  It never raises: a notice that cannot be written is said in the
caller's log and the caller goes on, since no run or cell may fail for a
notice.  It imports no apprise: sending is the sender's job, in a process
of its own (`sender.wake`).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from labshare import config
from labshare.errors import LabshareError
from labshare.notify.queue import Queue
from labshare.paths import Paths
from labshare.records.notice import Notice
from labshare.users import user_name

TIMED = frozenset({"cell", "run"})  # kinds whose notice waits for `min_duration`


@dataclass(frozen=True)
class Event:
    kind: str
    what: str
    subject: str = ""
    seconds: float | None = None


def new_id(now: float | None = None) -> str:
    """Sortable by time, unique without coordination: milliseconds then random hex."""
    return f"{int((now or time.time()) * 1000):013d}-{secrets.token_hex(5)}"


def outbox(paths: Paths) -> Queue:
    """The member's outbox on this host, beside the server's state (homes may be shared by hosts)."""
    return Queue(paths.state_dir / "notices")


def settings(paths: Paths) -> tuple[config.MemberNotify, config.SiteNotify]:
    site = config.load_site(paths.site_config)
    return config.load_member(paths.user_config_file).notify, site.notify


def wanted(event: Event, member: config.MemberNotify, site: config.SiteNotify) -> bool:
    if not member.enabled or event.kind not in member.events:
        return False
    if not (member.url or site.lab_channels):
        return False
    if event.kind in TIMED:
        return (event.seconds or 0.0) >= (member.min_duration or 0.0)
    return True


def notice_for(paths: Paths, event: Event, now: float | None = None) -> Notice:
    user = user_name(paths.uid)
    now = now or time.time()
    return Notice(
        id=new_id(now),
        kind=event.kind,
        user=user,
        host=paths.hostname,
        what=event.what,
        subject=event.subject,
        seconds=event.seconds,
        link=f"labshare connect {user}@{paths.hostname}",
        at=now,
    )


def emit(
    paths: Paths, event: Event, say: Callable[[str], None] | None = None, wake: bool = True
) -> Notice | None:
    """Write the notice for `event` if the member wants one and has a channel; None otherwise.

    `say` hears, in one sentence, why a wanted notice could not be written.
    """
    try:
        member, site = settings(paths)
        if not wanted(event, member, site):
            return None
        notice = notice_for(paths, event)
        outbox(paths).ensure().add(notice.id, notice)
    except (OSError, LabshareError) as exc:
        if say is not None:
            say(f"labshare: no notice of {event.kind} ({event.what}): {exc}")
        return None
    if wake:
        from labshare.notify import sender

        sender.wake(paths)
    return notice


def exit_words(status: int) -> str:
    """How a process ended, in words: 'exit status 3', 'killed by SIGKILL'."""
    import signal

    if status < 0 or status > 128:
        signum = -status if status < 0 else status - 128
        try:
            return f"killed by {signal.Signals(signum).name}"
        except ValueError:
            return f"killed by signal {signum}"
    return f"exit status {status}"


def run_finished(paths: Paths, argv: list[str], status: int, seconds: float) -> Notice | None:
    """`labshare run`'s notice: the command, how it ended, how long it took."""
    import shlex

    command = shlex.join(argv)
    if len(command) > 80:
        command = command[:79] + "…"
    what = "finished" if status == 0 else f"failed ({exit_words(status)})"
    return emit(paths, Event("run", what, f"`{command}`", seconds))
