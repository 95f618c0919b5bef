"""The member's Jupyter token: made once per `start`, kept in a 0600 file.

Jupyter gets it only through its environment (`JUPYTER_TOKEN`), which other
accounts cannot read, never through argv, which they can.
"""

from __future__ import annotations

from labshare.errors import LabshareError
from labshare.files import write_atomic
from labshare.paths import Paths


def new_token() -> str:
    """256 bits from the OS, URL-safe so it can go into `?token=` as is."""
    import secrets

    return secrets.token_urlsafe(32)


def write_token(paths: Paths, token: str) -> None:
    """No trailing newline: Jupyter reads token files without stripping."""
    write_atomic(paths.token_file, token, mode=0o600)


def read_token(paths: Paths) -> str:
    try:
        return paths.token_file.read_text().strip()
    except FileNotFoundError:
        raise LabshareError(
            f"The token file {paths.token_file} is missing; run `labshare restart` to make a new one."
        ) from None
