"""The exceptions labshare raises on purpose, and the exit codes they mean.

Every failure a user can meet is a sentence that says what happened and what
to do; `cli.main` prints it on one line (or as one JSON object under
`--json`) and exits with its `exit_code`.  The subclasses exist so that
callers decide by kind, never by comparing integers: `connect`'s healing gives
up on `AuthFailed` and keeps trying on `HostUnreachable`.  Anything else
escaping is a bug and shows a traceback only with `--debug`.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Every exit status labshare chooses; the manual's table is made from this."""

    OK = 0
    FAILED = 1
    USAGE = 2  # also a local port that is taken: the caller must choose differently
    NOT_RUNNING = 3  # as `systemctl status` and LSB init scripts
    UNREACHABLE = 4
    AUTH_FAILED = 5
    FORWARDING_REFUSED = 6
    LABSHARE_MISSING = 7
    INTERNAL = 70  # EX_SOFTWARE from sysexits.h: a bug in labshare
    INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


class LabshareError(Exception):
    """A failure explained to the user: what happened and what to do."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(
        self, message: str, *, detail: str | None = None, exit_code: ExitCode | None = None
    ):
        super().__init__(message)
        self.message = message
        self.detail = detail
        if exit_code is not None:
            self.exit_code = ExitCode(exit_code)

    def __str__(self) -> str:
        return self.message

    @property
    def last_said(self) -> str:
        """The last line the failed program printed: usually its own reason, worth one sentence."""
        lines = [line.strip() for line in (self.detail or "").splitlines() if line.strip()]
        return lines[-1] if lines else ""


class NotRunning(LabshareError):
    """The member's JupyterLab is not running (here, or on the host `connect` asked)."""

    exit_code = ExitCode.NOT_RUNNING


class HostUnreachable(LabshareError):
    """ssh could not reach the host, or the server there stopped answering; worth retrying."""

    exit_code = ExitCode.UNREACHABLE


class AuthFailed(LabshareError):
    """ssh could not log in; retrying without the member's help cannot fix it."""

    exit_code = ExitCode.AUTH_FAILED


class ForwardingRefused(LabshareError):
    """The host's sshd forbids the forward labshare needs."""

    exit_code = ExitCode.FORWARDING_REFUSED


class LabshareMissing(LabshareError):
    """labshare is not installed (or not found) on the server."""

    exit_code = ExitCode.LABSHARE_MISSING


class LocalPortTaken(LabshareError):
    """The local port the member asked for belongs to another program."""

    exit_code = ExitCode.USAGE


FINAL: tuple[type[LabshareError], ...] = (
    AuthFailed,
    ForwardingRefused,
    LabshareMissing,
    LocalPortTaken,
)
"""Failures no retry can mend: a healing loop re-raises these at once."""
