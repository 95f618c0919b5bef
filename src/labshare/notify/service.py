"""Root's notices service: takes members' notices from the spool and sends them to the lab's channels.

The lab's channel URLs hold secrets (a Slack webhook, a mail password), so
they live in a root-only file (`[notify] channels_file`, mode 0600, a
`urls` list) that only this service reads.  For whom a notice is, it
learns from the spool file's owner; the site's `[notify] address` says how
that member is named on the channels: `{address}` (or `{user}`) in a URL
becomes it, and on a URL without one (a Slack channel's webhook) it comes
first in the text, as a mention.  A URL with `{address}` for a member the
address table leaves out is not used for them: a notice never goes to
someone else's address.  What it took is in its own 0700 queue before the
spool file is removed, so a restart loses nothing and sends nothing twice.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote

from labshare import config
from labshare.config.values import read_toml
from labshare.errors import LabshareError
from labshare.notify import spool
from labshare.notify.engine import Channel, Engine
from labshare.notify.queue import Queue, held
from labshare.records.notice import Notice

DEFAULT_STATE_DIR = Path("/var/lib/labshare/notice-service")
POLL = 0.2
log = logging.getLogger("labshare.notices")


def read_channels(path: Path) -> list[str]:
    """The lab's apprise URLs, from a file only root may read; anything else is refused by name."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise LabshareError(
            f"The channels file {path} named by [notify] channels_file does not exist; create it "
            f'(`urls = ["..."]`) with `sudo install -m 600 -o root /dev/null {path}` and edit it.'
        ) from None
    if not stat.S_ISREG(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o077:
        raise LabshareError(
            f"The channels file {path} holds secrets and must be root's with mode 0600 (it is "
            f"{stat.S_IMODE(st.st_mode):o}, uid {st.st_uid}); fix it with "
            f"`sudo chown root {path} && sudo chmod 600 {path}`."
        )
    urls = read_toml(path).get("urls", [])
    if not isinstance(urls, list) or not all(isinstance(u, str) and u for u in urls):
        raise LabshareError(f"{path}: urls must be a list of apprise URLs; fix the file.")
    return list(urls)


def channel_name(url: str) -> str:
    """A name for a lab channel in logs and tallies that shows nothing of its secret."""
    return "lab-" + hashlib.sha256(url.encode()).hexdigest()[:8]


def addressed(url: str, address: str | None, user: str) -> tuple[str, str] | None:
    """The URL for `user` and what comes before the text; None when the URL would address no one of theirs."""
    if "{address}" in url:
        if address is None:
            return None
        return url.replace("{address}", quote(address, safe="@")).replace("{user}", quote(user)), ""
    if "{user}" in url:
        return url.replace("{user}", quote(user)), ""
    return url, f"{address or user}: " if address != user else ""


@dataclass
class LabChannels:
    """The channels file, read again when it changes."""

    path: Path
    urls: list[str]
    stamp: float

    @classmethod
    def load(cls, path: Path) -> LabChannels:
        return cls(path, read_channels(path), path.stat().st_mtime)

    def fresh(self) -> LabChannels:
        try:
            if self.path.stat().st_mtime == self.stamp:
                return self
            return LabChannels.load(self.path)
        except (OSError, LabshareError) as exc:
            log.warning("labshare notices: keeping the channels read before: %s", exc)
            return self


class Service:
    def __init__(self, site: config.SiteNotify, state_dir: Path):
        if not site.channels_file:
            raise LabshareError(
                "The site config names no [notify] channels_file, so there is nothing for the notices "
                "service to send to; set it (see the admin's notices page) and start it again."
            )
        self.site = site
        self.channels = LabChannels.load(Path(site.channels_file))
        self.queue = Queue(state_dir).ensure()
        self.engine = Engine(self.queue, self.channels_for, site.expire_after)
        self.stopping = False

    def channels_for(self, key: str, notice: Notice) -> list[Channel]:
        user = notice.user  # checked against the spool file's owner when it was taken
        found = []
        for url in self.channels.urls:
            target = addressed(url, self.site.address_of(user), user)
            if target is None:
                continue
            found.append(Channel(channel_name(url), _sender(*target)))
        return found

    def take(self) -> int:
        """Move the spool's notices into the queue; the count taken."""
        count = 0
        for item in spool.take(Path(self.site.spool_dir)):
            if item.notice is None:
                log.warning(
                    "labshare notices: refused %s of %s: %s", item.name, item.user, item.refused
                )
                tally = self.engine.tally
                self.engine.tally = replace(tally, refused=tally.refused + 1)
                self.queue.save_tally(self.engine.tally)
                continue
            if self.queue.add(f"{item.uid}-{item.notice.id}", item.notice):
                count += 1
        return count

    def serve(self) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        with held(self.queue.lock_file, wait=False) as mine:
            if not mine:
                raise LabshareError(
                    f"Another notices service already runs on {self.queue.root}; stop it first "
                    "(`sudo systemctl stop labshare-notices`)."
                )
            log.info("labshare notices: serving %s", self.site.spool_dir)
            due = 0.0
            while not self.stopping:
                self.channels = self.channels.fresh()
                taken = self.take()
                if taken or time.monotonic() >= due:
                    wait = self.engine.step()
                    due = time.monotonic() + (POLL if wait is None else wait)
                time.sleep(POLL)

    def _stop(self, _signum: int, _frame: object) -> None:
        self.stopping = True


def _sender(url: str, before: str) -> Callable[[Notice], str | None]:
    def send(notice: Notice) -> str | None:
        from labshare.notify import channels

        return channels.send(url, notice.title(), before + notice.line(), notice.severity())

    return send
