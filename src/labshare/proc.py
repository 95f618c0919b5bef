"""The one way labshare runs another program.

Argument lists only, never a shell; quiet on success; on failure the error
carries the last lines the program printed, so the user sees why.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from labshare.errors import LabshareError


def tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    what: str,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout: float | None = None,
    input: str | None = None,
    hint: str = "",
) -> subprocess.CompletedProcess[str]:
    """Run `argv` and return its captured output, or raise a LabshareError naming `what` failed."""
    try:
        done = subprocess.run(
            [os.fspath(a) for a in argv],
            env=dict(env) if env is not None else None,
            cwd=cwd,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise LabshareError(f"{what} failed: {argv[0]} was not found.{(' ' + hint) if hint else ''}") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabshareError(f"{what} took longer than {timeout:.0f} s and was stopped.") from exc
    if done.returncode != 0:
        raise LabshareError(
            f"{what} failed (exit code {done.returncode}).{(' ' + hint) if hint else ''}",
            detail=tail(done.stderr or done.stdout),
        )
    return done
