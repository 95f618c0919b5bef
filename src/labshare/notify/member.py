"""The member's `[notify]` table, changed by `labshare notify set|off|on` and nothing else.

Only the keys asked for change (tomlkit keeps the rest of the file as the
member wrote it).  The file holds their channel's URL, a secret (an ntfy
topic is a password, a mail URL may hold one), so it is written 0600
whatever it was.  A URL apprise cannot send to is refused before it is
kept, and so is a threshold the schema refuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labshare import config
from labshare.config import schema
from labshare.errors import LabshareError
from labshare.files import write_atomic

APPRISE_URLS = "https://appriseit.com/services/"


@dataclass(frozen=True)
class Changed:
    """What a `notify` command left in the member's config."""

    config_file: str
    channel: str | None  # the URL with its secrets hidden
    min_duration: float | None
    events: list[str]
    enabled: bool


def _edit(path: Path, change: dict[str, Any]) -> None:
    import tomlkit

    try:
        doc = tomlkit.parse(path.read_text()) if path.exists() else tomlkit.document()
    except OSError as exc:
        raise LabshareError(f"Cannot read {path} ({exc.strerror}); fix its permissions.") from None
    except Exception as exc:  # tomlkit's parse errors have no common base worth naming
        raise LabshareError(f"{path} is not valid TOML ({exc}); fix the file.") from None
    table = doc.get("notify")
    if table is None:
        table = tomlkit.table()
        doc["notify"] = table
    for key, value in change.items():
        table[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, tomlkit.dumps(doc), mode=0o600)


def _result(path: Path) -> Changed:
    from labshare.notify import channels

    own = config.load_member(path).notify
    return Changed(
        config_file=str(path),
        channel=channels.redacted(own.url) if own.url else None,
        min_duration=own.min_duration,
        events=list(own.events),
        enabled=own.enabled,
    )


def set_channel(path: Path, url: str, min_duration: str | None) -> Changed:
    from labshare.notify import channels

    if not channels.valid(url):
        scheme = url.split("://", 1)[0] if "://" in url else url
        raise LabshareError(
            f"{scheme!r} is not an apprise URL labshare can send to; write it as apprise does "
            f"(e.g. ntfy://ntfy.sh/TOPIC, mailto://USER:PASSWORD@example.com; see {APPRISE_URLS})."
        )
    change: dict[str, Any] = {"url": url, "enabled": True}
    if min_duration is not None:
        schema.check(path, "notify", schema.key("notify", "min_duration"), min_duration)
        change["min_duration"] = min_duration
    config.load_member(path)  # the rest of the file must be valid too, or nothing is written
    _edit(path, change)
    return _result(path)


def switch(path: Path, enabled: bool) -> Changed:
    config.load_member(path)
    _edit(path, {"enabled": enabled})
    return _result(path)
