"""Every JSON document labshare writes or exchanges, as one frozen type each, with a format version.

The server's state, the launch spec, kernel records, GPU leases, port
claims, the reclaim history, `info --json` and the laptop's remembered
servers cross processes, hosts and labshare versions, so a reader must meet
a type, never a dict: a document of an older format is read with defaults
for what it lacks, and one of a newer format, or one too old to make sense
of, is one sentence naming both labshare versions and the upgrade command,
never a `KeyError` (the habit of pipx's `PipxMetadata`).

Each document is written as `{"version": N, "labshare": "<writer's version>", ...}`.
Format 1 is the unversioned JSON labshare wrote before these types.

This `__init__` imports only light standard modules, and holds the one
record `connect` reads before the rest of labshare is imported
(connect/dial.py), the laptop's memory of a server: `dataclasses` and
`typing` would cost more than that whole early path, and even one more
module costs it 0.4 ms, so it is a named tuple here, its checks written out.
The memory is a cache: one this labshare cannot read is forgotten by its
caller, and the server is asked again.
"""

from __future__ import annotations

from collections import namedtuple

from labshare import __version__
from labshare.errors import LabshareError

UNVERSIONED = 1
"""The format of a document written before it carried a version: labshare's JSON until records."""
FOREIGN = "labshare did not write it; remove it, or run the same labshare version on both sides"
KNOWN_VERSION = 2


class RecordError(LabshareError):
    """A document this labshare cannot read: a newer format, one too old to make sense of, or corrupt."""


class Unreadable(RecordError):
    """A document of a format this labshare knows, missing a field or holding a wrong type; `problem` says which."""

    def __init__(self, message: str, problem: str):
        super().__init__(message)
        self.problem = problem


class TooNew(RecordError):
    """A document of a format newer than this labshare reads: left as it is, for the labshare that wrote it."""


def envelope(data: object, source: str, known: int) -> tuple[int, str | None]:
    """The format version and the writer's labshare version of `data`, if this labshare can read it.

    `source` names the document in sentences ("the state file /x/server.json",
    "`labshare info --json` on gpu1").
    """
    if not isinstance(data, dict):
        raise RecordError(f"{source} is not a JSON object; {FOREIGN}")
    version = data.get("version", UNVERSIONED)
    writer = data.get("labshare")
    writer = writer if isinstance(writer, str) else None
    if not isinstance(version, int) or isinstance(version, bool) or version < UNVERSIONED:
        raise RecordError(f"{source} has no valid format version ({version!r}); {FOREIGN}")
    if version > known:
        raise newer(source, version, known, writer)
    return version, writer


def newer(source: str, found: int, known: int, writer: str | None) -> TooNew:
    """The sentence for a document newer than this labshare reads: the reader is the one to upgrade."""
    from labshare.install_hint import reinstall_hint

    return TooNew(
        f"{source} is in format {found}, written by labshare {writer or 'newer than this one'}, but labshare "
        f"{__version__} here reads format {known} at most; upgrade labshare here: {reinstall_hint()}."
    )


def older(source: str, writer: str | None, what_is_wrong: str, *, remote: bool) -> Unreadable:
    """The sentence for a document too old (or too broken) to read: the writer is the one to upgrade."""
    from labshare.install_hint import REMOTE_UPGRADE, reinstall_hint

    upgrade = (
        f"upgrade labshare there: {REMOTE_UPGRADE}"
        if remote
        else f"upgrade labshare: {reinstall_hint()}"
    )
    return Unreadable(
        f"{source} ({what_is_wrong}) comes from "
        f"{f'labshare {writer}' if writer else 'an older labshare'}, which labshare "
        f"{__version__} here cannot read; {upgrade}.",
        what_is_wrong,
    )


_KNOWN_TYPES = {
    "mode": str,
    "socket": str,
    "socket_fallback": bool,
    "token": str,
    "user": str,
    "host": str,
    "root_dir": str,
    "local_port": int,
    "own_master": bool,
}
_Fields = namedtuple(
    "_Fields",
    [
        "mode",
        "socket",
        "socket_fallback",
        "token",
        "user",
        "host",
        "root_dir",
        "local_port",
        "own_master",
    ],
    defaults=(None, None, None, None, None, None, None, None, None),
)


class KnownServer(_Fields):
    """What a laptop remembers of a host's server (connect/known.py's file): where it listens, its token,
    and this laptop's facts: the local port, whether our own ssh master held the tunnel."""

    __slots__ = ()

    def to_json(self) -> dict[str, object]:
        return {"version": KNOWN_VERSION, "labshare": __version__, **self._asdict()}

    @classmethod
    def from_json(cls, data: object, source: str) -> KnownServer:
        envelope(data, source, KNOWN_VERSION)
        assert isinstance(data, dict)
        for key, kind in _KNOWN_TYPES.items():
            value = data.get(key)
            if value is not None and (
                not isinstance(value, kind) or (kind is int and isinstance(value, bool))
            ):
                raise RecordError(f"{source} has {value!r} for {key!r}; it will be forgotten.")
        return cls(**{key: data.get(key) for key in _KNOWN_TYPES})

    @property
    def rememberable(self) -> bool:
        """Only a socket in the member's own state directory: no other account can listen there."""
        return (
            self.mode == "socket"
            and not self.socket_fallback
            and bool(self.socket)
            and bool(self.token)
        )
