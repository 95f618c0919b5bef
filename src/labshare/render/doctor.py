"""Text face of `labshare doctor`: one line per check, the fix indented under it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from labshare.doctor import Report

MARKS = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}


def report(result: Report) -> str:
    lines = [f"labshare doctor: {result.side} checks on {result.host}"]
    width = max((len(c.name) for c in result.checks), default=0)
    for c in result.checks:
        lines.append(f"  {MARKS.get(c.status, c.status)}  {c.name.ljust(width)}  {c.detail}")
        if c.fix and c.status != "ok":
            lines.append(f"        {' ' * width}  fix: {c.fix}")
    if result.stopped:
        lines.append(f"Stopped old Jupyter server(s): pid {', '.join(map(str, result.stopped))}.")
    fails = sum(c.status == "fail" for c in result.checks)
    warns = sum(c.status == "warn" for c in result.checks)
    if fails:
        lines.append(f"{fails} problem(s) to fix, {warns} warning(s).")
    elif warns:
        lines.append(f"All good, with {warns} warning(s).")
    else:
        lines.append("All good.")
    return "\n".join(lines)
