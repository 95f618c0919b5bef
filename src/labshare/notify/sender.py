"""The member's own sender: a small process that drains their outbox, started by whichever process wrote to it.

A notice must go out whatever wrote it: a Lab that `labshare start`
supervises, one a hub spawned or one started by hand, `labshare run` in a
tmux with no server at all.  So no one process owns sending: every
producer, after writing, calls `wake`, which starts this sender unless one
holds the outbox's lock already.  The sender sends to the member's own
channel with apprise and hands notices for the lab's channels to the
spool, waits out a channel that is down (the backoff is kept on disk),
lingers a few seconds for the next notice of a burst, and exits once
nothing is owed.  Before exiting it lets go of the lock and looks once
more, so a notice written while it was finishing is never stranded.  The
supervisor wakes it at start too, so what a reboot interrupted is sent.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from labshare import config
from labshare.errors import LabshareError
from labshare.notify import spool
from labshare.notify.engine import Channel, Engine
from labshare.notify.events import outbox, settings
from labshare.notify.queue import Queue, held
from labshare.paths import Paths
from labshare.records.notice import Notice

LINGER = 3.0  # seconds an idle sender waits for more of a burst before it exits
POLL = 0.1
LOCK_PATIENCE = 1.0  # seconds a starting sender waits for a glance at the lock to pass
OWN, LAB = "own", "lab"


def wake(paths: Paths) -> bool:
    """Start a sender for the member's outbox unless one runs; True if one was started."""
    queue = outbox(paths).ensure()
    with held(queue.lock_file, wait=False) as free:
        if not free:
            return False
    log = os.open(queue.root / "sender.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        subprocess.Popen(
            [sys.executable, "-m", "labshare.notify.sender"],
            env=sender_env(paths),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        os.close(log)
    return True


def sender_env(paths: Paths) -> dict[str, str]:
    """The environment in which the sender finds the same outbox and configs as the process that woke it."""
    return {
        **os.environ,
        "HOME": str(paths.home),
        "XDG_STATE_HOME": str(paths.state_home),
        "XDG_CONFIG_HOME": str(paths.config_home),
        "LABSHARE_SITE_CONFIG": str(paths.site_config),
    }


def channels(member: config.MemberNotify, site: config.SiteNotify) -> list[Channel]:
    found = []
    if member.url:
        url = member.url

        def own(notice: Notice) -> str | None:
            from labshare.notify import channels as apprise_channels

            return apprise_channels.send(url, notice.title(), notice.line(), notice.severity())

        found.append(Channel(OWN, own))
    if site.lab_channels:
        spool_dir = Path(site.spool_dir)
        found.append(Channel(LAB, lambda notice: spool.drop(spool_dir, notice)))
    return found


class MemberSender:
    """One drain of the outbox, with the member's settings read again whenever they change."""

    def __init__(self, paths: Paths, queue: Queue):
        self.paths = paths
        self._stamp: tuple[float, float] | None = None
        self._channels: list[Channel] = []
        _member, site = self._settings()
        self.engine = Engine(queue, lambda _key, _notice: self._channels, site.expire_after)

    def _settings(self) -> tuple[config.MemberNotify, config.SiteNotify]:
        member, site = settings(self.paths)
        self._channels = channels(member, site)
        return member, site

    def refresh(self) -> None:
        stamp = (_mtime(self.paths.user_config_file), _mtime(self.paths.site_config))
        if stamp != self._stamp:
            self._stamp = stamp
            _member, site = self._settings()
            self.engine.expire_after = site.expire_after

    def drain(self) -> None:
        """Until nothing is owed and nothing new came for `LINGER` seconds."""
        quiet_since = time.monotonic()
        while True:
            self.refresh()
            wait = self.engine.step()
            if wait is None:
                if time.monotonic() - quiet_since > LINGER:
                    return
                time.sleep(POLL)
                continue
            quiet_since = time.monotonic()
            if wait > 0:
                _sleep_until_new(self.engine.queue, wait)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _sleep_until_new(queue: Queue, seconds: float) -> None:
    """Wait out a backoff, but no longer than until a new notice comes (it may be for another channel)."""
    before = set(queue.keys())
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(min(POLL * 5, max(deadline - time.monotonic(), 0)))
        if set(queue.keys()) - before:
            return


def main() -> int:
    """Drain the outbox while holding its lock; leave at once if another sender holds it.

    Many producers may wake senders at once (a burst); only one gets the
    lock, and the others go.  One that merely meets a producer's or
    `notify status`'s glance at the lock waits it out (a second at most).
    """
    os.umask(0o077)
    paths = Paths.from_env()
    queue = outbox(paths).ensure()
    while True:
        with held(queue.lock_file, wait=False, patience=LOCK_PATIENCE) as mine:
            if not mine:
                return 0  # another sender drains, and looks again after it lets go
            try:
                MemberSender(paths, queue).drain()
            except (
                LabshareError
            ) as exc:  # a config broken meanwhile: said; the next wake tries again
                print(f"labshare notices: {exc}", file=sys.stderr, flush=True)
                return 1
        if not queue.has_pending():
            return 0


if __name__ == "__main__":
    sys.exit(main())
