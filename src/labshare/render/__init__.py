"""The only printer: a command's result as text or as `--json`.

Commands return plain data (dataclasses, dicts, lists); `emit` turns it into
JSON mechanically, so `--json` never drifts from the text face.  Each area
keeps its text layouts in its own module here (`render.server`, ...).
Rich is imported only when a table is drawn, to keep quick commands quick.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
from collections.abc import Callable
from pathlib import PurePath
from typing import Any, TextIO


def jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return value


def emit(data: Any, *, as_json: bool, text: Callable[[Any], str] | None = None) -> None:
    """Print `data` as one JSON document, or as the text `text(data)` lays out."""
    if as_json:
        print(json.dumps(jsonable(data), indent=2, sort_keys=False))
    elif text is not None:
        out = text(data)
        if out:
            print(out)


def emit_event(event: object, stream: TextIO | None = None) -> None:
    """One JSON object per line, flushed at once: the face of long-running commands."""
    out = stream or sys.stdout
    out.write(json.dumps(jsonable(event)) + "\n")
    out.flush()


def note(message: str) -> None:
    """A progress or status line for people, on stderr so `--json` output stays clean."""
    print(message, file=sys.stderr, flush=True)


def error(message: str, detail: str | None = None) -> None:
    print(f"labshare: error: {message}", file=sys.stderr)
    if detail:
        for line in detail.splitlines():
            print(f"  {line}", file=sys.stderr)


def failure(message: str, exit_code: int, detail: str | None = None, *, face: str = "json") -> None:
    """A failure under `--json`, on stdout: one `{"error": ...}` object, or an `error` event.

    `face` is the command's (`cli.face`): "events" ends a stream of events
    with an `error` event; "lines" keeps the object on one line, as every
    other line of such a command's output.
    """
    fields: dict[str, Any] = {"message": message, "exit_code": int(exit_code)}
    if detail:
        fields["detail"] = detail
    if face == "events":
        emit_event({"event": "error", **fields})
    elif face == "lines":
        emit_event({"error": fields})
    else:
        emit({"error": fields}, as_json=True)


def table(columns: list[str], rows: list[list[str]], title: str | None = None) -> str:
    """A rich table rendered to a string (plain when not on a terminal)."""
    from rich.console import Console
    from rich.table import Table

    tbl = Table(*columns, title=title, box=None, pad_edge=False, header_style="bold")
    for row in rows:
        tbl.add_row(*row)
    console = Console(file=None, width=200 if not sys.stdout.isatty() else None, highlight=False)
    with console.capture() as cap:
        console.print(tbl)
    return cap.get().rstrip("\n")


def ago(moment: dt.datetime | None, now: dt.datetime | None = None) -> str:
    if moment is None:
        return "never"
    now = now or dt.datetime.now(dt.timezone.utc)
    secs = max(0, int((now - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if secs >= size:
            return f"{secs // size} {unit} ago"
    return f"{secs} s ago"
