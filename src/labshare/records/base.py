"""The one way a record becomes JSON and back, so the types in this package are data, not code.

A record is a frozen dataclass; its annotations say what `from_json`
accepts, so a field of the wrong type is a sentence naming the field, and
a field an older format lacks takes its default.  A record whose format
changed in more than added fields says how in `upgrade`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, TypeVar

from labshare import __version__
from labshare.records import envelope, older

R = TypeVar("R", bound="Record")
_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
    "None": (type(None),),
    "dict": (dict,),
    "list": (list,),
    "tuple": (list, tuple),
    "object": (object,),
}


class Record:
    """A frozen dataclass that is one JSON document: `VERSION` is the newest format it reads and writes."""

    VERSION: ClassVar[int]

    def to_json(self) -> dict[str, Any]:
        """The document; a field named like the envelope's `labshare` reads the writer's version back."""
        fields = {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        envelope = {"version": self.VERSION, "labshare": __version__}
        return {**envelope, **{k: v for k, v in fields.items() if k not in envelope}}

    @classmethod
    def from_json(cls: type[R], data: object, source: str, *, remote: bool = False) -> R:
        """The record in `data`, or a `RecordError` naming `source`, both labshare versions and the upgrade.

        `remote` says the writer is labshare on another host, so an
        unreadable document is upgraded there rather than here.
        """
        version, writer = envelope(data, source, cls.VERSION)
        assert isinstance(data, dict)
        values = cls.upgrade(dict(data), version)
        kwargs: dict[str, Any] = {}
        for field in dataclasses.fields(cls):  # type: ignore[arg-type]
            if field.name not in values:
                if (
                    field.default is dataclasses.MISSING
                    and field.default_factory is dataclasses.MISSING
                ):
                    raise older(source, writer, f"no valid {field.name!r}", remote=remote)
                continue
            value = values[field.name]
            if not _accepts(str(field.type), value):
                raise older(source, writer, f"no valid {field.name!r}", remote=remote)
            kwargs[field.name] = (
                tuple(value) if str(field.type).startswith("tuple") and value is not None else value
            )
        return cls(**kwargs)

    @classmethod
    def upgrade(cls, data: dict[str, Any], version: int) -> dict[str, Any]:
        """`data` of format `version` as the current format has it; added fields need nothing here."""
        return data


def _accepts(annotation: str, value: object) -> bool:
    """Whether `value` fits an annotation such as `int | None` or `tuple[str, ...]` (outer types only)."""
    for part in annotation.split("|"):
        types = _TYPES.get(part.strip().split("[", 1)[0])
        if types is None or (
            isinstance(value, types)
            and not (isinstance(value, bool) and bool not in types and object not in types)
        ):
            return True
    return False


def _plain(value: object) -> object:
    """Tuples as lists, nested records as their fields: what json.dumps writes."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Record):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}  # type: ignore[arg-type]
    return value
