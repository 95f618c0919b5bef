"""`[notify]`, in the site config and in a member's own: who is told what, and where.

The site's table names only what may be read by everyone: the root-only
file that holds the lab's channel URLs (secrets), how a member is addressed
on them, and the spool where members' processes leave notices.  A member's
table holds their own channel (a secret too: the file is kept 0600), the
shortest cell or run worth a notice, and which kinds they want.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labshare.config import schema


def _parse(path: Path, table: Mapping[str, Any], who: str) -> dict[str, Any]:
    known = schema.keys("notify", who)
    schema.unknown(path, "notify", table, known)
    return {name: schema.check(path, "notify", known[name], v) for name, v in table.items()}


@dataclass(frozen=True)
class SiteNotify:
    """The site's `[notify]`: where the lab's channels are, never what they are."""

    channels_file: str | None = schema.default("notify", "channels_file")
    address: str | Mapping[str, str] | None = schema.default("notify", "address")
    spool_dir: Path = schema.default("notify", "spool_dir")
    expire_after: float | None = schema.default("notify", "expire_after")

    @property
    def lab_channels(self) -> bool:
        return self.channels_file is not None

    def address_of(self, user: str) -> str | None:
        """How `user` is named on the lab's channels; None where a table leaves them out."""
        if self.address is None:
            return user
        if isinstance(self.address, str):
            return self.address.replace("{user}", user)
        return self.address.get(user)


@dataclass(frozen=True)
class MemberNotify:
    """A member's `[notify]`: their own channel and what they want to hear of."""

    url: str | None = schema.default("notify", "url")
    min_duration: float | None = schema.default("notify", "min_duration")
    events: tuple[str, ...] = schema.default("notify", "events")
    enabled: bool = schema.default("notify", "enabled")


def parse_site_notify(path: Path, table: Mapping[str, Any]) -> SiteNotify:
    return SiteNotify(**_parse(path, table, schema.SITE))


def parse_member_notify(path: Path, table: Mapping[str, Any]) -> MemberNotify:
    return MemberNotify(**_parse(path, table, schema.MEMBER))
