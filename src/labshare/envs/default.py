"""The member's own "Python 3 (default)" kernel, in place of the one that runs labshare's environment.

labshare's environment holds JupyterLab itself, so `%pip install torch` in a
kernel running there can break the tool (tornado, pyzmq, traitlets pins) —
and that is the tile a newcomer picks first.  The server hides it
(`kernels.own_kernel_dirs`); this module gives each member, on `labshare
start`, a small uv environment of their own instead: ipykernel and pip on the
Python labshare runs on, so it is quick to make and `%pip install` there
changes only it.  Its spec takes Jupyter's default name, `python3`, so
notebooks from anywhere open in it without asking which kernel to use.

A `python3` spec the member made themselves is theirs and left alone; one
removed with `labshare env remove` comes back on the next start.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from labshare.envs import uv
from labshare.envs.kernels import NATIVE_KERNEL_NAME, KernelPlaces, Target, problems_of, render_in
from labshare.envs.specfiles import labshare_meta, locked, read_spec, write_spec
from labshare.envs.undo import undone_on_failure
from labshare.errors import LabshareError

LABEL = "Python 3 (default)"
PACKAGES = ("ipykernel", "pip")


def env_dir(data_home: Path) -> Path:
    """Beside labshare's other per-member data, out of the folder Jupyter serves."""
    return data_home / "labshare" / "envs" / "default"


def _needed(places: KernelPlaces) -> bool:
    """No `python3` of the member's own, and ours is missing or cannot start."""
    spec = read_spec(places.user / NATIVE_KERNEL_NAME)
    if spec is None:
        return True
    meta = labshare_meta(spec)
    return bool(meta and meta.get("default")) and bool(problems_of(spec))


def _make(places: KernelPlaces, env: Path) -> None:
    python = env / "bin" / "python"
    with undone_on_failure() as undo:
        if not python.exists():  # never made, half made, or the Python it was made from is gone
            shutil.rmtree(env, ignore_errors=True)
            undo.made(env)
            uv.run(
                [
                    "venv",
                    "--python",
                    uv.default_python(),
                    "--python-preference",
                    "only-system",
                    str(env),
                ],
                what="uv venv",
                cwd=env.parent,
                hint="Check that your home directory is writable.",
            )
        uv.run(
            ["pip", "install", "--python", str(python), *PACKAGES],
            what="uv pip install ipykernel",
            cwd=env.parent,
            hint="Check your network (or your uv index settings).",
        )
        version = uv.probe_python(python).version
        spec = render_in(
            places,
            Target(
                project=env,
                env=env,
                python=python,
                python_version=version,
                manager="uv",
                label=LABEL,
            ),
            LABEL,
        )
        spec["metadata"]["labshare"]["default"] = True
        write_spec(places.user, NATIVE_KERNEL_NAME, spec)


def ensure(data_home: Path, places: KernelPlaces | None = None) -> list[str]:
    """Make the default kernel where it is missing; a note for `start` to show, never an error.

    Costs one small file read when the kernel is there.  A failure (no network, say)
    must not stop the server: it is reported, and the next start tries again.
    """
    places = places or KernelPlaces.current()
    if not _needed(places):
        return []
    env = env_dir(data_home)
    try:
        env.parent.mkdir(parents=True, exist_ok=True)
        with locked(env.parent):
            if not _needed(places):
                return []
            _make(places, env)
    except (LabshareError, OSError) as exc:
        said = (
            f" (uv said: {exc.last_said})"
            if isinstance(exc, LabshareError) and exc.last_said
            else ""
        )
        return [
            f"Could not make your {LABEL} kernel: {exc}{said} `labshare start` tries again next time."
        ]
    return [
        f"Made your {LABEL} kernel in {env}: `%pip install` there changes only that environment."
    ]
