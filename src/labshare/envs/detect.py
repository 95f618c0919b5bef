"""Which package manager owns a folder, and where it keeps the environment.

labshare registers what a project already has rather than converting it, so
it must recognise uv, Rye, Poetry, PDM, Hatch, pixi, plain venvs and conda
prefixes by the files each leaves behind, and find (never create) each one's
environment the way that manager itself would.  Reading only: nothing here
changes a file.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labshare import proc
from labshare.config.project import load_toml
from labshare.envs.naming import slug
from labshare.errors import LabshareError

VENV_DIRS = (".venv", "venv", "env", ".env")
UV_MANAGERS = ("uv", "rye")  # uv runs Rye projects as they are


@dataclass
class Project:
    """A project folder and the environment that belongs to it."""

    path: Path
    label: str
    manager: str
    env: Path | None
    pyproject: Path | None

    @property
    def uv_managed(self) -> bool:
        return self.manager in UV_MANAGERS

    @property
    def python(self) -> Path | None:
        return None if self.env is None else self.env / "bin" / "python"


def read_pyproject(folder: Path) -> tuple[Path | None, dict[str, Any]]:
    path = folder / "pyproject.toml"
    if not path.is_file():
        return None, {}
    return path, load_toml(path.read_text(encoding="utf-8"), path)


def _is_venv(path: Path) -> bool:
    return (path / "pyvenv.cfg").is_file() and (path / "bin" / "python").exists()


def _is_conda(path: Path) -> bool:
    return (path / "conda-meta").is_dir() and (path / "bin" / "python").exists()


def _workspace_root(project: Path) -> Path:
    """The uv workspace root that lists `project` as a member, or the project itself."""
    for parent in [project, *project.parents]:
        _, data = read_pyproject(parent)
        ws = data.get("tool", {}).get("uv", {}).get("workspace")
        if not isinstance(ws, dict):
            continue
        if parent == project:
            return parent
        rel = project.relative_to(parent).as_posix()
        members = ws.get("members", [])
        excluded = ws.get("exclude", [])
        if any(fnmatch.fnmatch(rel, g) for g in members) and not any(
            fnmatch.fnmatch(rel, g) for g in excluded
        ):
            return parent
    return project


def uv_env_dir(project: Path, environ: Mapping[str, str] | None = None) -> Path:
    """Where uv keeps this project's env: UV_PROJECT_ENVIRONMENT, else the workspace root's `.venv`."""
    env = os.environ if environ is None else environ
    root = _workspace_root(project)
    custom = env.get("UV_PROJECT_ENVIRONMENT")
    if custom:
        p = Path(os.path.expanduser(custom))
        return p if p.is_absolute() else root / p
    return root / ".venv"


def _asked(tool: str, args: list[str], project: Path) -> Path | None:
    """The venv path `tool ARGS` prints (its last line), when the tool is installed and answers."""
    found = shutil.which(tool)
    if not found:
        return None
    try:
        out = proc.run([found, *args], what=f"{tool} {' '.join(args)}", cwd=project, timeout=60)
        answer = Path(out.stdout.strip().splitlines()[-1])
    except (LabshareError, IndexError):
        return None
    return answer if _is_venv(answer) else None


def _poetry_env(project: Path, name: str) -> Path | None:
    if _is_venv(project / ".venv"):
        return project / ".venv"
    asked = _asked("poetry", ["env", "info", "--path"], project)
    if asked is not None:
        return asked
    base = os.environ.get("POETRY_VIRTUALENVS_PATH")
    cache = Path(os.environ.get("POETRY_CACHE_DIR") or Path.home() / ".cache" / "pypoetry")
    where = Path(base) if base else cache / "virtualenvs"
    sanitized = re.sub(r'[ $`!*@"\\\r\n\t]', "_", name.lower())[:42]
    digest = hashlib.sha256(os.fsencode(os.path.normcase(os.path.realpath(project)))).digest()
    prefix = f"{sanitized}-{base64.urlsafe_b64encode(digest).decode()[:8]}-py"
    found_envs = sorted(where.glob(f"{prefix}*"), key=lambda p: p.stat().st_mtime, reverse=True)
    return next((p for p in found_envs if _is_venv(p)), None)


def _pdm_env(project: Path) -> Path | None:
    marker = project / ".pdm-python"
    if marker.is_file():
        python = Path(marker.read_text().strip())
        if python.exists() and _is_venv(python.parent.parent):
            return python.parent.parent
    return project / ".venv" if _is_venv(project / ".venv") else None


def _hatch_env(project: Path, name: str) -> Path | None:
    asked = _asked("hatch", ["env", "find", "default"], project)
    if asked is not None:
        return asked
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    found_envs = [
        p for p in (data_home / "hatch" / "env" / "virtual" / name).glob(f"*/{name}") if _is_venv(p)
    ]
    if len(found_envs) == 1:
        return found_envs[0]
    return _local_venv(project)


def _local_venv(project: Path) -> Path | None:
    return next((project / d for d in VENV_DIRS if _is_venv(project / d)), None)


def _by_manager(
    folder: Path, name: str, tool: Mapping[str, Any], data: Mapping[str, Any]
) -> tuple[str, Path | None] | None:
    """(manager, env) for a folder with a pyproject.toml, judged by its tables and lock files."""

    def has(*names: str) -> bool:
        return any((folder / n).is_file() for n in names)

    if has("uv.lock") or "uv" in tool:
        return "uv", uv_env_dir(folder)
    if "rye" in tool or has("requirements-dev.lock"):
        return "rye", uv_env_dir(folder)
    if "poetry" in tool or has("poetry.lock"):
        return "poetry", _poetry_env(folder, name)
    if "pdm" in tool or has("pdm.lock", ".pdm-python"):
        return "pdm", _pdm_env(folder)
    if has("hatch.toml") or "envs" in tool.get("hatch", {}):
        return "hatch", _hatch_env(folder, name)
    if "project" in data:
        return "uv", uv_env_dir(folder)
    return None


def detect(path: Path) -> Project:
    """Recognise the project at `path` and find (not create) its environment."""
    raw = Path(os.path.expanduser(str(path)))
    if not raw.exists():
        raise LabshareError(f"{raw} does not exist; pass the folder of an existing project.")
    if not raw.is_dir():
        raise LabshareError(
            f"{raw} is a file, not a project folder; pass the folder that holds it."
        )
    folder = Path(os.path.realpath(raw))
    if _is_venv(folder):
        return Project(folder, folder.name, "venv", folder, None)
    if _is_conda(folder):
        return Project(folder, folder.name, "conda", folder, None)
    pyproject, data = read_pyproject(folder)
    tool = data.get("tool", {}) if isinstance(data.get("tool"), dict) else {}
    name = str(
        data.get("project", {}).get("name") or tool.get("poetry", {}).get("name") or folder.name
    )
    if (folder / "pixi.toml").is_file() or "pixi" in tool:
        env = folder / ".pixi" / "envs" / "default"
        if not _is_conda(env) and not (env / "bin" / "python").exists():
            raise LabshareError(
                f"{folder} is a pixi project without an environment yet; run `pixi install` there first."
            )
        return Project(folder, name, "pixi", env, pyproject)
    found = _by_manager(folder, name, tool, data) if pyproject is not None else None
    if found is not None:
        return Project(folder, name, found[0], found[1], pyproject)
    local = _local_venv(folder)
    if local is not None:
        return Project(
            folder, folder.name, "conda" if _is_conda(local) else "venv", local, pyproject
        )
    raise LabshareError(
        f"No Python project found in {folder} (no pyproject.toml with a [project] table, virtual environment "
        f"or conda prefix); run `labshare env create {slug(folder.name)} --path {folder}` to make one."
    )


def declares_ipykernel(data: Mapping[str, Any]) -> bool:
    """Whether the pyproject already asks for ipykernel anywhere uv installs from."""
    lists: list[Any] = [data.get("project", {}).get("dependencies", [])]
    lists += list(data.get("dependency-groups", {}).values())
    lists.append(data.get("tool", {}).get("uv", {}).get("dev-dependencies", []))
    lists.append(data.get("tool", {}).get("rye", {}).get("dev-dependencies", []))
    for items in lists:
        for item in items if isinstance(items, list) else []:
            if isinstance(item, str) and re.match(r"^\s*ipykernel\b", item, re.IGNORECASE):
                return True
    return False
