"""A directory of notices owed, with the log that keeps each one from being sent twice.

One queue is the member's outbox (in their 0700 state dir, files 0600);
another is root's service's.  `pending/KEY.json` holds a notice until every
channel has it or it expired.  `log.jsonl` is appended to before each try
("try") and after it ("sent", "failed", "expired"): a try whose outcome was
never written (the sender died during it) is not repeated, since a notice
sent twice is what this must never do.  `tally.json` holds each channel's
counts and backoff.  Only the sender holding `sender.lock` writes here,
apart from producers adding notices, which is one atomic rename.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from labshare.files import ensure_private_dir, write_atomic
from labshare.records import RecordError
from labshare.records.notice import ChannelTally, Notice, Tally
from labshare.records.store import Store

KEY = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
COMPACT_BYTES = 256 * 1024
DONE = frozenset({"sent", "expired", "unconfirmed"})


@dataclass
class Queue:
    """The queue in `root`; `known` maps (key, channel) to what the log last said of it."""

    root: Path
    known: dict[tuple[str, str], str] = field(default_factory=dict)
    _cache: dict[str, Notice] = field(default_factory=dict)

    @property
    def pending_dir(self) -> Path:
        return self.root / "pending"

    @property
    def log_file(self) -> Path:
        return self.root / "log.jsonl"

    @property
    def lock_file(self) -> Path:
        return self.root / "sender.lock"

    @property
    def tally_store(self) -> Store[Tally]:
        return Store(self.root / "tally.json", Tally, "the notices tally")

    def ensure(self) -> Queue:
        ensure_private_dir(self.root)
        ensure_private_dir(self.pending_dir)
        return self

    def add(self, key: str, notice: Notice) -> bool:
        """Write `notice` under `key` unless it is already owed or was already handled; True if written."""
        if not KEY.match(key):
            raise ValueError(f"not a notice key: {key!r}")
        path = self.pending_dir / f"{key}.json"
        if path.exists() or any(k == key for k, _ in self.known):
            return False
        write_atomic(path, json.dumps(notice.to_json()) + "\n", mode=0o600)
        return True

    def keys(self) -> list[str]:
        """Keys owed, oldest first (keys start with a time stamp, or a uid and one)."""
        try:
            names = os.listdir(self.pending_dir)
        except FileNotFoundError:
            return []
        return sorted(n[:-5] for n in names if n.endswith(".json") and not n.startswith("."))

    def has_pending(self) -> bool:
        return bool(self.keys())

    def pending(self) -> list[tuple[str, Notice]]:
        """Every notice owed, read once each; an unreadable one is set aside, never sent."""
        found = []
        keys = self.keys()
        for key in keys:
            notice = self._cache.get(key)
            if notice is None:
                path = self.pending_dir / f"{key}.json"
                try:
                    notice = Notice.from_json(json.loads(path.read_text()), f"the notice {path}")
                except FileNotFoundError:
                    continue
                except (OSError, ValueError, RecordError):
                    with contextlib.suppress(OSError):
                        os.replace(path, path.with_name(f".{key}.unreadable"))
                    continue
                self._cache[key] = notice
            found.append((key, notice))
        return sorted(found, key=lambda kn: (kn[1].at, kn[0]))

    def finish(self, key: str) -> None:
        """Every channel has had it: it is no longer owed."""
        with contextlib.suppress(FileNotFoundError):
            (self.pending_dir / f"{key}.json").unlink()
        self._cache.pop(key, None)

    def note(self, key: str, channel: str, event: str, *, sync: bool = False) -> None:
        """One line of the log; `sync` for the line that must be on disk before a send."""
        line = json.dumps({"key": key, "channel": channel, "event": event}) + "\n"
        fd = os.open(self.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        self.known[(key, channel)] = event

    def load_log(self, compact: bool = False) -> list[tuple[str, str]]:
        """Read what earlier senders did; the tries they never finished, to be counted once.

        `compact`: only the sender holding the lock may rewrite the log.
        """
        self.known.clear()
        try:
            text = self.log_file.read_text()
        except FileNotFoundError:
            return []
        for raw in text.splitlines():
            try:
                entry = json.loads(raw)
                self.known[(str(entry["key"]), str(entry["channel"]))] = str(entry["event"])
            except (ValueError, KeyError, TypeError):
                continue  # a line cut by a crash
        unfinished = [kc for kc, event in self.known.items() if event == "try"]
        if compact and len(text) > COMPACT_BYTES:
            self._compact()
        return unfinished

    def _compact(self) -> None:
        """Keep the log's lines for notices still owed only: the others can never be sent again."""
        owed = set(self.keys())
        lines = [
            json.dumps({"key": k, "channel": c, "event": e})
            for (k, c), e in self.known.items()
            if k in owed
        ]
        write_atomic(self.log_file, "".join(f"{line}\n" for line in lines), mode=0o600)
        self.known = {kc: e for kc, e in self.known.items() if kc[0] in owed}

    def done(self, key: str, channel: str) -> bool:
        return self.known.get((key, channel)) in DONE or self.known.get((key, channel)) == "try"

    def tally(self) -> Tally:
        try:
            return self.tally_store.read() or Tally()
        except RecordError:
            return Tally()

    def save_tally(self, tally: Tally) -> None:
        self.tally_store.write(tally)


def channel_tally(tally: Tally, name: str) -> ChannelTally:
    raw = tally.channels.get(name)
    if isinstance(raw, dict):
        with contextlib.suppress(RecordError):
            return ChannelTally.from_json(raw, "a channel's tally")
    return ChannelTally()


def with_channel(tally: Tally, name: str, counts: ChannelTally) -> Tally:
    return replace(tally, channels={**tally.channels, name: counts.to_json()})


@contextlib.contextmanager
def held(lock_file: Path, wait: bool = True, patience: float = 0.0) -> Iterator[bool]:
    """Hold the sender's lock (True), or with `wait=False` say that another holds it (False),
    after trying for `patience` seconds."""
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + patience
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.05)
        yield True
    finally:
        os.close(fd)
