"""`labshare doctor`: the questions newcomers get stuck on, each answered with a fix.

A check is plain data, so `--json` and the text face come from the same
list and a test can assert on one check by name.  Server-side checks live in
`checks`, laptop-side ones (through ssh) in `remote`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

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


@dataclass(frozen=True)
class HostFiles:
    """The system files the server checks read; overridable so an admin (or a test) can point at a copy."""

    sshd_config: Path = Path("/etc/ssh/sshd_config")
    logind_config: Path = Path("/etc/systemd/logind.conf")
    linger_dir: Path = Path("/var/lib/systemd/linger")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HostFiles:
        env = os.environ if environ is None else environ
        return cls(
            sshd_config=Path(env.get("LABSHARE_SSHD_CONFIG") or cls.sshd_config),
            logind_config=Path(env.get("LABSHARE_LOGIND_CONFIG") or cls.logind_config),
            linger_dir=Path(env.get("LABSHARE_LINGER_DIR") or cls.linger_dir),
        )
