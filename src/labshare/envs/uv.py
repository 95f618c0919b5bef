"""uv, the engine behind `labshare env`, and the interpreters it makes.

uv comes as labshare's own dependency (its PyPI wheel carries the binary), so
it is found there first and on PATH only as a fallback.  Every uv call runs
with the member's environment minus `VIRTUAL_ENV`, which would otherwise make
uv act on labshare's venv instead of the project's.  A project's Python is
asked about itself rather than guessed from file names.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from labshare import proc
from labshare.errors import LabshareError
from labshare.install_hint import reinstall_hint

_PROBE = (
    "import sys, json, importlib.util; print(json.dumps({'version': '%d.%d.%d' % sys.version_info[:3],"
    " 'prefix': sys.prefix, 'ipykernel': importlib.util.find_spec('ipykernel') is not None}))"
)


@dataclass(frozen=True)
class PythonInfo:
    version: str
    prefix: str
    ipykernel: bool


def uv_bin() -> str:
    """uv from labshare's own dependencies (PyPI wheel), else the one on PATH."""
    try:
        import uv

        found = uv.find_uv_bin()
        if found and os.path.isfile(found):
            return str(found)
    except (ImportError, FileNotFoundError):
        pass
    on_path = shutil.which("uv")
    if on_path:
        return on_path
    raise LabshareError(
        f"uv was not found; reinstall labshare, which brings uv with it: {reinstall_hint()}."
    )


def shell_uv() -> str:
    """labshare's uv as a command to show an admin: the script scripts/install links for shells
    (it trusts the system's certificates, as pip does) where there is one, else uv itself."""
    shim = os.path.join(sys.prefix, "libexec", "labshare", "uv")
    return shim if os.access(shim, os.X_OK) else uv_bin()


# uv's switches for the system's certificate store: today's name first, then the older one it replaced.
TRUST_SETTINGS = ("UV_SYSTEM_CERTS", "UV_NATIVE_TLS")


def system_trust(environ: Mapping[str, str]) -> dict[str, str]:
    """uv trusts what the system trusts, as pip and Python do, unless the member chose otherwise.

    uv alone carries its own CA list, so behind a TLS-inspecting proxy whose CA
    the admin put in the system store, `uv add` failed where `pip` and
    scripts/install's download worked.
    """
    return {} if any(key in environ for key in TRUST_SETTINGS) else {TRUST_SETTINGS[0]: "1"}


def run(args: Sequence[str | os.PathLike[str]], *, what: str, cwd: Path, hint: str) -> None:
    """Run `uv ARGS` in `cwd`; a failure names `what` and carries uv's last lines."""
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env.setdefault("UV_NO_PROGRESS", "1")
    env.update(system_trust(env))
    proc.run([uv_bin(), *args], what=what, cwd=cwd, env=env, hint=hint)


def default_python() -> str:
    """The interpreter labshare itself runs on (its base, not its venv): present, so uv never downloads."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    return base if base and os.path.exists(base) else sys.executable


def probe_python(python: Path) -> PythonInfo:
    """Ask the interpreter itself: its version, prefix and whether it can import ipykernel."""
    done = proc.run(
        [python, "-c", _PROBE],
        what=f"Running {python}",
        timeout=60,
        hint="Check that the environment is intact, or recreate it.",
    )
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return PythonInfo(
        version=data["version"], prefix=data["prefix"], ipykernel=bool(data["ipykernel"])
    )
