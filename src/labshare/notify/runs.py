"""Cells run back to back on one kernel, told apart from a kernel's iopub: one notice when the last ends.

Pure: fed the iopub messages that matter (`execute_input`, `error`, and
`status`, each with its parent request's id), and the time, it says when a
run may have ended and, once `grace` has passed with no next cell, what the
notice says.  An `execute_input` starts a run or goes on with one; the
kernel's `idle` after the last request it saw ends it, unless another
queued cell starts within `grace`: so "Run all" of many cells is one run.
The Lab server's extension (`jupyterside.cell_notices`) and the watcher of
kernels other clients start (`notify.kernel_watch`) both use it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from labshare.notify.events import Event

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
WATCHED = frozenset({"execute_input", "error", "status"})


def error_line(content: dict[str, Any]) -> str:
    """The error's last line, as a traceback ends: `ValueError: bad shape`."""
    trace = [_ANSI.sub("", line).strip() for line in content.get("traceback") or []]
    lines = [line for chunk in trace for line in chunk.splitlines() if line.strip()]
    if lines:
        return lines[-1][:200]
    return f"{content.get('ename', 'Error')}: {content.get('evalue', '')}".strip()[:200]


@dataclass(frozen=True)
class Heard:
    """One iopub message that matters to a run: its type, its request's id, its content."""

    kind: str
    request: str | None
    content: dict[str, Any]


def hear(session: Any, parts: list[Any]) -> Heard | None:
    """The message in a jupyter_client Session's multipart `parts` when it is one a run is made of.

    Only its header is decoded first: the outputs a busy kernel streams are
    passed over undecoded, and a message the key does not sign is None.
    """
    try:
        _idents, rest = session.feed_identities(parts)
        msg = session.deserialize(rest, content=False)
    except Exception:
        return None
    kind = msg["header"]["msg_type"]
    parent = msg.get("parent_header") or {}
    if kind not in WATCHED or parent.get("msg_type") != "execute_request":
        return None
    content: dict[str, Any] = {}
    if kind != "execute_input":
        try:
            content = session.unpack(msg["content"])
        except Exception:
            pass  # an undecodable error still ends the run, with the error's name unknown
    return Heard(kind, parent.get("msg_id"), content)


@dataclass
class Run:
    started: float
    cells: int = 0
    error: str | None = None
    last_request: str | None = None
    ended: float | None = None


@dataclass
class Runs:
    """One kernel's runs; `run` is the one going on, if any."""

    grace: float = 1.5
    run: Run | None = None

    def heard(self, kind: str, request: str | None, content: dict[str, Any], now: float) -> bool:
        """Take one message (of a parent `execute_request`); True when the run may have just ended."""
        run = self.run
        if kind == "execute_input":
            if run is None:
                run = self.run = Run(started=now)
            run.cells += 1
            run.ended = None
            run.last_request = request
        elif kind == "error" and run is not None:
            run.error = error_line(content)
        elif (
            kind == "status"
            and run is not None
            and content.get("execution_state") == "idle"
            and request == run.last_request
        ):
            run.ended = now
            return True
        return False

    def due(self) -> float | None:
        """When the run counts as ended if no cell starts before."""
        if self.run is None or self.run.ended is None:
            return None
        return self.run.ended + self.grace

    def finish(self, now: float, subject: str) -> Event | None:
        """The notice's event once the run has ended and `grace` passed; None before."""
        due = self.due()
        if due is None or now < due or self.run is None or self.run.ended is None:
            return None
        run, self.run = self.run, None
        assert run.ended is not None
        many = run.cells > 1
        if run.error:
            what = f"{'cells' if many else 'cell'} failed: {run.error}"
        else:
            what = f"{run.cells} cells finished" if many else "cell finished"
        return Event("cell", what, subject, run.ended - run.started)

    def busy(self) -> bool:
        return self.run is not None and self.run.ended is None
