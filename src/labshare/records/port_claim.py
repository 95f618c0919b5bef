"""A port claim's content: which member took the port, said for the admin reading the claims directory.

Who owns a claim is what the filesystem says (see `claims.py`); the content
only helps a person, but it is a document labshare writes, so it has a type
like the rest.  Format 1 was the member's name on one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from labshare.records.base import Record


@dataclass(frozen=True)
class PortClaim(Record):
    VERSION: ClassVar[int] = 2

    port: int
    user: str
