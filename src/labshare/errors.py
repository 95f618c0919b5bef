"""The one exception labshare raises on purpose.

Every failure a user can meet is a sentence that says what happened and what
to do; `cli.main` prints it on one line and exits with `exit_code`.  Anything
else escaping is a bug and shows a traceback only with `--debug`.
"""

from __future__ import annotations


class LabshareError(Exception):
    """A failure explained to the user: what happened and what to do."""

    exit_code: int = 1

    def __init__(self, message: str, *, detail: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.detail = detail
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message
