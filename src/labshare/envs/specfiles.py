"""kernel.json files on disk: read, written and removed so no reader sees half a spec.

A running Jupyter server rescans the kernels folder whenever the launcher
asks, and several `labshare env create` may run at once, so every change is a
rename (of a finished file, or of a finished folder built beside the kernels
folder) under one flock on that folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from labshare.errors import LabshareError


def read_spec(resource_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((resource_dir / "kernel.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def labshare_meta(spec: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """`metadata.labshare` of a spec labshare wrote, or None for anyone else's."""
    meta = (spec or {}).get("metadata")
    ours = meta.get("labshare") if isinstance(meta, dict) else None
    return ours if isinstance(ours, dict) and ours.get("project") else None


def spec_dirs(directory: Path) -> list[Path]:
    """The spec folders in one kernels folder, sorted, skipping hidden (half-made or removed) ones."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    return [
        directory / n
        for n in names
        if not n.startswith(".") and (directory / n / "kernel.json").is_file()
    ]


def ipykernel_resources() -> Path | None:
    """ipykernel's own `resources` folder: its logos, and where its built-in python3 spec lives."""
    found = importlib.util.find_spec("ipykernel")
    if not found or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations))) / "resources"


@contextlib.contextmanager
def locked(kernels_dir: Path) -> Iterator[None]:
    """Serialise registrations in one kernels dir (flock on the directory: no lock file to leave)."""
    kernels_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(kernels_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _logos() -> list[Path]:
    resources = ipykernel_resources()
    if resources is None:
        return []
    return [
        p
        for p in (resources / n for n in ("logo-32x32.png", "logo-64x64.png", "logo-svg.svg"))
        if p.is_file()
    ]


def write_spec(kernels_dir: Path, name: str, spec: Mapping[str, Any]) -> Path:
    """Put `spec` at `kernels_dir/name/kernel.json` so that readers see the old spec or the new, never neither."""
    dest = kernels_dir / name
    kernels_dir.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(spec, indent=1) + "\n"
    if dest.is_dir():
        fd, tmp = tempfile.mkstemp(dir=dest, prefix=".kernel.json.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(payload)
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest / "kernel.json")
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return dest
    # Built beside, not inside, the kernels dir: a rescanning server must not list the half-made spec.
    tmp_dir = Path(
        tempfile.mkdtemp(dir=kernels_dir.parent, prefix=f".labshare-{name}.", suffix=".tmp")
    )
    try:
        os.chmod(tmp_dir, 0o755)
        for logo in _logos():
            shutil.copyfile(logo, tmp_dir / logo.name)
        (tmp_dir / "kernel.json").write_text(payload, encoding="utf-8")
        os.rename(tmp_dir, dest)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return dest


def remove_spec(resource_dir: Path) -> None:
    """Take a spec away atomically (rename out of sight, then delete)."""
    gone = resource_dir.parent.parent / f".labshare-{resource_dir.name}.removed-{os.getpid()}"
    try:
        os.rename(resource_dir, gone)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise LabshareError(
            f"Cannot remove the kernelspec {resource_dir} ({exc.strerror}); "
            "ask whoever owns that folder (perhaps an admin) to remove it."
        ) from exc
    shutil.rmtree(gone, ignore_errors=True)
