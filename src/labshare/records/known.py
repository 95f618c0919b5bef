"""The laptop's memory of a host's JupyterLab (connect/known.py's file), as a light frozen type.

`connect` reads it in its first milliseconds, before the rest of labshare
is imported (connect/dial.py), where `dataclasses` and `typing` would cost
more than the whole early path: so a named tuple, and checks written out.
The memory is a cache: one this labshare cannot read is forgotten by its
caller, and the server is asked again.
"""

from __future__ import annotations

from collections import namedtuple

from labshare.records import RecordError, envelope

VERSION = 2
_TYPES = {"mode": str, "socket": str, "socket_fallback": bool, "token": str, "user": str, "host": str,
          "root_dir": str, "local_port": int, "own_master": bool}
_Fields = namedtuple(
    "_Fields",
    ["mode", "socket", "socket_fallback", "token", "user", "host", "root_dir", "local_port", "own_master"],
    defaults=(None, None, None, None, None, None, None, None, None),
)


class KnownServer(_Fields):
    """Where a host's server listens, its token, and this laptop's facts: the local port, our own ssh master."""

    __slots__ = ()

    def to_json(self) -> dict[str, object]:
        from labshare import __version__

        return {"version": VERSION, "labshare": __version__, **self._asdict()}

    @classmethod
    def from_json(cls, data: object, source: str) -> KnownServer:
        envelope(data, source, VERSION)
        assert isinstance(data, dict)
        for key, kind in _TYPES.items():
            value = data.get(key)
            if value is not None and (not isinstance(value, kind) or kind is int and isinstance(value, bool)):
                raise RecordError(f"{source} has {value!r} for {key!r}; it will be forgotten.")
        return cls(**{key: data.get(key) for key in _TYPES})

    @property
    def rememberable(self) -> bool:
        """Only a socket in the member's own state directory: no other account can listen there."""
        return self.mode == "socket" and not self.socket_fallback and bool(self.socket) and bool(self.token)
