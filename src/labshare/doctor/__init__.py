"""`labshare doctor`: the questions newcomers get stuck on, each answered with a fix.

A check is plain data, so `--json` and the text face come from the same
list and a test can assert on one check by name.  Server-side checks are
gathered by `checks` (with `versions`, `private`, `hostconf`,
`old_servers`, `gpus` and `projects` beside it), laptop-side ones (through ssh) in `remote`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Check:
    """One answer: what was looked at, the verdict, one line of why, and what to do about it."""

    name: str
    status: str
    detail: str
    fix: str | None = None


@dataclass
class Report:
    """Every check in the order it ran; `failed` decides the exit code."""

    host: str
    side: str
    checks: list[Check] = field(default_factory=list)
    stopped: list[int] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(c.status == FAIL for c in self.checks)

    def get(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)
