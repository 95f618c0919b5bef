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

This `__init__` and `known` import only light standard modules: `connect`
reads the remembered servers before the rest of labshare is imported
(connect/dial.py), and its start-up budget is a few milliseconds.
"""

from __future__ import annotations

from labshare import __version__
from labshare.errors import LabshareError

UNVERSIONED = 1
"""The format of a document written before it carried a version: labshare's JSON until records."""
FOREIGN = "labshare did not write it; remove it, or run the same labshare version on both sides"


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

    upgrade = f"upgrade labshare there: {REMOTE_UPGRADE}" if remote else f"upgrade labshare: {reinstall_hint()}"
    return Unreadable(
        f"{source} ({what_is_wrong}) comes from {f'labshare {writer}' if writer else 'an older labshare'}, which labshare "
        f"{__version__} here cannot read; {upgrade}.",
        what_is_wrong,
    )
