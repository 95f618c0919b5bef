"""`%pip` (and `%uv`) for the kernels labshare registers: packages go where the member expects.

This file runs inside the member's kernel, in an environment that has no
labshare in it, so it uses the standard library only; labshare copies it into
the member's data folder (labshare/envs/kerneltools.py) and the kernelspec
loads it at start.  IPython's own `%pip` runs `python -m pip`, and uv's
environments have no pip; its `%uv` runs `python -m uv`, which they lack too.

What `%pip` does instead, with the uv found on the kernel's PATH:

- in a uv project whose environment is this kernel's (the kernelspec sets
  `UV_PROJECT`), `install` is `uv add` and `uninstall` is `uv remove`, so the
  package is recorded in pyproject.toml and uv.lock and a later `uv sync` or
  `uv add` keeps it (uv removes what its lock does not know);
- anywhere else (a plain venv, the default kernel, conda) it is
  `uv pip install --python <this kernel's python>`: this environment only;
- any other verb (list, show, freeze, ...) is `uv pip VERB` on this kernel's python.

After each call import caches are invalidated, so a new package imports at once.
"""

from __future__ import annotations

import importlib
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

NAME = "labshare"
# `uv pip` verbs that take --python; others (compile, --help) go to uv as written.
_ON_PYTHON = {"install", "uninstall", "list", "show", "freeze", "check", "tree", "sync"}
_YES = {"-y", "--yes"}  # pip asks before it uninstalls; uv never does, and refuses the flag
_replaced: dict[str, Any] = {}


def uv_project() -> Path | None:
    """The uv project this kernel belongs to: named by UV_PROJECT, with this kernel's environment as its own."""
    named = os.environ.get("UV_PROJECT")
    if not named:
        return None
    root = Path(named).expanduser()
    env = root / Path(os.environ.get("UV_PROJECT_ENVIRONMENT") or ".venv").expanduser()
    if not (root / "pyproject.toml").is_file() or os.path.realpath(env) != os.path.realpath(
        sys.prefix
    ):
        return None
    return root


def plan(args: list[str], project: Path | None) -> tuple[list[str], str]:
    """uv's arguments for `%pip ARGS`, and the line that says, once uv succeeded, what it recorded where."""
    verb, rest = (args[0], args[1:]) if args else ("", [])
    here = sys.prefix
    if project is not None and verb in ("install", "uninstall"):
        pyproject = project / "pyproject.toml"
        if verb == "install":
            uv_args = ["add", *rest]
            said = f"recorded in {pyproject} and uv.lock, installed into {here}"
        else:
            uv_args = ["remove", *[a for a in rest if a not in _YES]]
            said = f"removed from {pyproject}, uv.lock and {here}"
        return uv_args, f"{NAME}: %pip {verb} ran `uv {shlex.join(uv_args)}`: {said}."
    if verb in _ON_PYTHON:
        kept = [a for a in rest if a not in _YES] if verb == "uninstall" else rest
        uv_args = ["pip", verb, "--python", sys.executable, *kept]
    else:
        uv_args = ["pip", *args]
    if verb not in ("install", "uninstall"):
        return uv_args, ""
    return uv_args, (
        f"{NAME}: %pip {verb} ran `uv pip {verb}`: changed {here} only "
        "(recorded in no pyproject.toml)."
    )


def run_uv(uv_args: list[str]) -> int:
    """Run labshare's uv (or the member's own, whichever is first on PATH), its output shown as it comes."""
    uv = shutil.which("uv")
    if uv is None:
        print(
            f"{NAME}: uv is not on this kernel's PATH; run `labshare start` on the server, "
            "then restart this kernel.",
            file=sys.stderr,
        )
        return 127
    child = subprocess.Popen(
        [uv, *uv_args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    try:
        assert child.stdout is not None
        for line in child.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
        return child.wait()
    except KeyboardInterrupt:
        child.terminate()
        child.wait()
        raise
    finally:
        importlib.invalidate_caches()


def pip(line: str) -> None:
    """Install into, or ask about, this kernel's environment with uv: `%pip install X` as with pip."""
    uv_args, said = plan(shlex.split(line), uv_project())
    code = run_uv(uv_args)
    if code == 0 and said:
        print(said)
    elif code != 0:
        print(
            f"{NAME}: `uv {shlex.join(uv_args)}` failed (exit {code}); uv said why above.",
            file=sys.stderr,
        )


def uv(line: str) -> None:
    """Run uv for this kernel's project: `%uv add X` is `!uv add X`, with new packages importable at once."""
    run_uv(shlex.split(line))


def load_ipython_extension(ipython: Any) -> None:
    line_magics = ipython.magics_manager.magics["line"]
    for name, func in (("pip", pip), ("uv", uv)):
        if name in line_magics and name not in _replaced:
            _replaced[name] = line_magics[name]
        ipython.register_magic_function(func, magic_kind="line", magic_name=name)


def unload_ipython_extension(ipython: Any) -> None:
    line_magics = ipython.magics_manager.magics["line"]
    for name in ("pip", "uv"):
        if name in _replaced:
            line_magics[name] = _replaced.pop(name)
