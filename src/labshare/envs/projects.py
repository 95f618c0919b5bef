"""Projects and their environments: make one with uv, or find the one a project already has.

uv is the engine (Rye's successor, shipped as labshare's own dependency);
other managers' environments are found and registered as they are, never
converted.  Whatever touches a member's files is planned first (so the CLI
can show it and ask), done with atomic writes checked by re-parsing, and
undone when a later step fails: a failed command leaves no half-registered
kernel and no changed file behind.
"""

from __future__ import annotations

import base64
import copy
import difflib
import fnmatch
import hashlib
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labshare import proc
from labshare.envs import kernels
from labshare.errors import LabshareError
from labshare.files import write_atomic

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Progress = Callable[[str], None]
NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
VENV_DIRS = (".venv", "venv", "env", ".env")
_PROBE = (
    "import sys, json, importlib.util; print(json.dumps({'version': '%d.%d.%d' % sys.version_info[:3],"
    " 'prefix': sys.prefix, 'ipykernel': importlib.util.find_spec('ipykernel') is not None}))"
)


def _quiet(message: str) -> None:
    pass


@dataclass(frozen=True)
class PythonInfo:
    version: str
    prefix: str
    ipykernel: bool


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
        return self.manager in ("uv", "rye")

    @property
    def python(self) -> Path | None:
        return None if self.env is None else self.env / "bin" / "python"


@dataclass
class AdoptPlan:
    """What `adopt` would do; the CLI shows it and asks before anything is changed."""

    project: Project
    pyproject_text: str | None
    rye_text: str | None = None
    rye_diff: str = ""
    needs_ipykernel: bool = False
    env_exists: bool = False
    old_specs: list[kernels.KernelEntry] = field(default_factory=list)


@dataclass
class EnvResult:
    """What `env create` / `env adopt` did, for text and `--json`."""

    name: str
    display_name: str
    project: str
    env: str
    python: str
    python_version: str
    manager: str
    spec_dir: str
    created_project: bool = False
    installed: list[str] = field(default_factory=list)
    changed_files: list[str] = field(default_factory=list)
    replaced_specs: list[str] = field(default_factory=list)


@dataclass
class RemoveResult:
    name: str
    display_name: str
    project: str | None
    owner: str
    removed_spec: bool
    deleted_files: bool


# ---------------------------------------------------------------- tools


def uv_bin() -> str:
    """uv from labshare's own dependencies (PyPI wheel), else the one on PATH."""
    try:
        import uv

        found = uv.find_uv_bin()
        if found and os.path.isfile(found):
            return str(found)
    except (ImportError, FileNotFoundError):
        pass
    found = shutil.which("uv")
    if found:
        return found
    raise LabshareError("uv was not found; reinstall labshare (`pip install labshare` brings uv with it).")


def _uv_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env.setdefault("UV_NO_PROGRESS", "1")
    return env


def _uv(args: Sequence[str | os.PathLike[str]], *, what: str, cwd: Path, hint: str) -> None:
    proc.run([uv_bin(), *args], what=what, cwd=cwd, env=_uv_env(), hint=hint)


def default_python() -> str:
    """The interpreter labshare itself runs on (its base, not its venv): present, so uv never downloads."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    return base if base and os.path.exists(base) else sys.executable


def probe_python(python: Path) -> PythonInfo:
    """Ask the interpreter itself: its version, prefix and whether it can import ipykernel."""
    done = proc.run(
        [python, "-c", _PROBE], what=f"Running {python}", timeout=60,
        hint="Check that the environment is intact, or recreate it.",
    )
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return PythonInfo(version=data["version"], prefix=data["prefix"], ipykernel=bool(data["ipykernel"]))


def validate_name(name: str) -> None:
    if not NAME_RE.match(name) or ".." in name:
        raise LabshareError(
            f"{name!r} is not a valid project name; use up to 64 letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit."
        )


def parse_env_pairs(pairs: Sequence[str]) -> dict[str, str | None]:
    """`KEY=VALUE` options; `KEY=` removes KEY."""
    out: dict[str, str | None] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not ENV_KEY_RE.match(key):
            raise LabshareError(f"--env {pair!r} is not KEY=VALUE; write it like --env CUDA_VISIBLE_DEVICES=0.")
        if key in ("PATH", "VIRTUAL_ENV", "CONDA_PREFIX"):
            raise LabshareError(f"--env cannot set {key}, which labshare sets to the project's environment.")
        out[key] = value or None
    return out


# ---------------------------------------------------------------- pyproject text edits


def load_toml(text: str, where: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LabshareError(f"{where} is not valid TOML ({exc}); fix it and try again.") from exc


def _toml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _toml_key(key: str) -> str:
    return key if re.match(r"^[A-Za-z0-9_-]+$", key) else _toml_str(key)


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def _sections(lines: list[str]) -> list[tuple[str, int, int]]:
    """(table name, first line, end line) of each `[table]`; the preamble is ''."""
    heads = [(0, "")]
    in_multiline = False
    for i, line in enumerate(lines):
        if line.count('"""') % 2 or line.count("'''") % 2:
            in_multiline = not in_multiline
        if in_multiline:
            continue
        m = _HEADER.match(line)
        if m:
            heads.append((i, re.sub(r"\s*\.\s*", ".", m.group(1)).replace('"', "")))
    out = []
    for n, (start, name) in enumerate(heads):
        end = heads[n + 1][0] if n + 1 < len(heads) else len(lines)
        out.append((name, start, end))
    return out


def _value_end(text: str, start: int) -> int:
    """Index just past the TOML value that begins at or after `start` (arrays/tables span lines)."""
    depth, i, quote = 0, start, ""
    while i < len(text):
        ch = text[i]
        if quote:
            if text.startswith(quote, i) and (len(quote) == 3 or text[i - 1] != "\\"):
                i += len(quote)
                quote = ""
                if depth == 0:
                    return i
                continue
        elif text.startswith('"""', i) or text.startswith("'''", i):
            quote = text[i:i + 3]
            i += 3
            continue
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            nl = text.find("\n", i)
            i = len(text) if nl < 0 else nl
            if depth == 0:
                return i
            continue
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
            if depth == 0:
                return i + 1
        elif ch == "\n" and depth == 0:
            return i
        i += 1
    return i


def _checked(before: dict[str, Any], after_text: str, expected: dict[str, Any], where: Path, what: str) -> str:
    after = load_toml(after_text, where)
    if after != expected:
        raise LabshareError(
            f"labshare could not {what} in {where} without touching anything else; make that change by hand."
        )
    return after_text


def migrate_rye(text: str, where: Path) -> str | None:
    """Move `[tool.rye] dev-dependencies` into `[dependency-groups] dev` (uv ignores the former).

    Returns the new text, or None when there is nothing to move.  Only the
    key's own lines move; the result is re-parsed and must equal the old
    document with exactly that one change.
    """
    data = load_toml(text, where)
    dev = data.get("tool", {}).get("rye", {}).get("dev-dependencies")
    if dev is None:
        return None
    groups = data.get("dependency-groups", {})
    if not isinstance(dev, list) or not isinstance(groups, dict):
        raise LabshareError(f"{where} has an unusual [tool.rye] layout; move dev-dependencies by hand.")
    existing = list(groups.get("dev", []))
    merged = existing + [d for d in dev if d not in existing]
    expected = copy.deepcopy(data)
    del expected["tool"]["rye"]["dev-dependencies"]
    expected.setdefault("dependency-groups", {})["dev"] = merged

    lines = text.splitlines(keepends=True)
    rye = [s for s in _sections(lines) if s[0] == "tool.rye"]
    if not rye:
        raise LabshareError(f"{where} sets tool.rye.dev-dependencies outside a [tool.rye] table; move it by hand.")
    _, start, end = rye[0]
    offset = sum(len(l) for l in lines[:start])
    body = "".join(lines[start:end])
    m = re.search(r"(?m)^[ \t]*[\"']?dev-dependencies[\"']?[ \t]*=", body)
    if not m:
        raise LabshareError(f"{where}: cannot find dev-dependencies in [tool.rye]; move it by hand.")
    value_end = _value_end(body, m.end())
    line_end = body.find("\n", value_end)
    line_end = len(body) if line_end < 0 else line_end + 1
    cut_from, cut_to = offset + m.start(), offset + line_end
    new = text[:cut_from] + text[cut_to:]

    rendered = "dev = [\n" + "".join(f"    {_toml_str(d)},\n" for d in merged) + "]\n"
    new_lines = new.splitlines(keepends=True)
    groups_sections = [s for s in _sections(new_lines) if s[0] == "dependency-groups"]
    if "dev" in groups:
        if not groups_sections:
            raise LabshareError(f"{where}: [dependency-groups] is written inline; move dev-dependencies by hand.")
        _, gstart, gend = groups_sections[0]
        gbody = "".join(new_lines[gstart:gend])
        goff = sum(len(l) for l in new_lines[:gstart])
        gm = re.search(r"(?m)^[ \t]*[\"']?dev[\"']?[ \t]*=", gbody)
        if not gm:
            raise LabshareError(f"{where}: cannot find the dev group; move dev-dependencies by hand.")
        gv_end = _value_end(gbody, gm.end())
        gl_end = gbody.find("\n", gv_end)
        gl_end = len(gbody) if gl_end < 0 else gl_end + 1
        new = new[:goff + gm.start()] + rendered + new[goff + gl_end:]
    elif groups_sections:
        _, gstart, _ = groups_sections[0]
        at = sum(len(l) for l in new_lines[:gstart + 1])
        new = new[:at] + rendered + new[at:]
    elif "dependency-groups" in data:
        raise LabshareError(f"{where}: [dependency-groups] is written inline; move dev-dependencies by hand.")
    else:
        new = new.rstrip("\n") + "\n\n[dependency-groups]\n" + rendered
    return _checked(data, new, expected, where, "move [tool.rye] dev-dependencies")


def set_labshare_env(text: str, where: Path, updates: Mapping[str, str | None]) -> str:
    """Set (or, for None, drop) keys of `[tool.labshare] env` and nothing else."""
    data = load_toml(text, where)
    tool = data.get("tool", {})
    current = tool.get("labshare", {}).get("env", {}) if isinstance(tool.get("labshare"), dict) else {}
    if not isinstance(current, dict):
        raise LabshareError(f"{where}: tool.labshare.env is not a table; make it one, like env = {{A = \"1\"}}.")
    merged = dict(current)
    for key, value in updates.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    expected = copy.deepcopy(data)
    expected.setdefault("tool", {}).setdefault("labshare", {})["env"] = merged
    line = "env = {" + ", ".join(f" {_toml_key(k)} = {_toml_str(str(v))}" for k, v in merged.items()) + (
        " }\n" if merged else "}\n")
    lines = text.splitlines(keepends=True)
    sections = _sections(lines)
    env_table = [s for s in sections if s[0] == "tool.labshare.env"]
    own = [s for s in sections if s[0] == "tool.labshare"]
    if env_table:
        _, start, end = env_table[0]
        body = [f"{_toml_key(k)} = {_toml_str(str(v))}\n" for k, v in merged.items()]
        new = "".join(lines[:start + 1] + body + (["\n"] if end < len(lines) else []) + lines[end:])
        expected["tool"]["labshare"]["env"] = merged
    elif own:
        _, start, end = own[0]
        body = "".join(lines[start:end])
        offset = sum(len(l) for l in lines[:start])
        m = re.search(r"(?m)^[ \t]*env[ \t]*=", body)
        if m:
            v_end = _value_end(body, m.end())
            l_end = body.find("\n", v_end)
            l_end = len(body) if l_end < 0 else l_end + 1
            new = text[:offset + m.start()] + line + text[offset + l_end:]
        else:
            at = offset + len(lines[start])
            new = text[:at] + line + text[at:]
    elif "labshare" in tool:
        raise LabshareError(f"{where} sets tool.labshare in an unusual way; add the env table by hand.")
    else:
        new = (text.rstrip("\n") + "\n\n" if text.strip() else "") + "[tool.labshare]\n" + line
    return _checked(data, new, expected, where, "set [tool.labshare] env")


def diff(before: str, after: str, name: str) -> str:
    return "".join(difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), f"{name} (now)", f"{name} (after)"))


# ---------------------------------------------------------------- detection


def _read_pyproject(folder: Path) -> tuple[Path | None, str | None, dict[str, Any]]:
    path = folder / "pyproject.toml"
    if not path.is_file():
        return None, None, {}
    text = path.read_text(encoding="utf-8")
    return path, text, load_toml(text, path)


def _is_venv(path: Path) -> bool:
    return (path / "pyvenv.cfg").is_file() and (path / "bin" / "python").exists()


def _is_conda(path: Path) -> bool:
    return (path / "conda-meta").is_dir() and (path / "bin" / "python").exists()


def _workspace_root(project: Path) -> Path:
    """The uv workspace root that lists `project` as a member, or the project itself."""
    for parent in [project, *project.parents]:
        _, _, data = _read_pyproject(parent) if (parent / "pyproject.toml").is_file() else (None, None, {})
        ws = data.get("tool", {}).get("uv", {}).get("workspace")
        if not isinstance(ws, dict):
            continue
        if parent == project:
            return parent
        rel = project.relative_to(parent).as_posix()
        members = ws.get("members", [])
        excluded = ws.get("exclude", [])
        if any(fnmatch.fnmatch(rel, g) for g in members) and not any(fnmatch.fnmatch(rel, g) for g in excluded):
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


def _poetry_env(project: Path, name: str) -> Path | None:
    if _is_venv(project / ".venv"):
        return project / ".venv"
    poetry = shutil.which("poetry")
    if poetry:
        try:
            out = proc.run([poetry, "env", "info", "--path"], what="poetry env info", cwd=project, timeout=60)
            found = Path(out.stdout.strip())
            if _is_venv(found):
                return found
        except LabshareError:
            pass
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
    hatch = shutil.which("hatch")
    if hatch:
        try:
            out = proc.run([hatch, "env", "find", "default"], what="hatch env find", cwd=project, timeout=60)
            found = Path(out.stdout.strip().splitlines()[-1])
            if _is_venv(found):
                return found
        except (LabshareError, IndexError):
            pass
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    found_envs = [p for p in (data_home / "hatch" / "env" / "virtual" / name).glob(f"*/{name}") if _is_venv(p)]
    if len(found_envs) == 1:
        return found_envs[0]
    return next((project / d for d in VENV_DIRS if _is_venv(project / d)), None)


def _local_venv(project: Path) -> Path | None:
    return next((project / d for d in VENV_DIRS if _is_venv(project / d)), None)


def detect(path: Path) -> Project:
    """Recognise the project at `path` and find (not create) its environment."""
    raw = Path(os.path.expanduser(str(path)))
    if not raw.exists():
        raise LabshareError(f"{raw} does not exist; pass the folder of an existing project.")
    if not raw.is_dir():
        raise LabshareError(f"{raw} is a file, not a project folder; pass the folder that holds it.")
    folder = Path(os.path.realpath(raw))
    if _is_venv(folder):
        return Project(folder, folder.name, "venv", folder, None)
    if _is_conda(folder):
        return Project(folder, folder.name, "conda", folder, None)
    pyproject, _, data = _read_pyproject(folder)
    tool = data.get("tool", {}) if isinstance(data.get("tool"), dict) else {}
    name = str(data.get("project", {}).get("name") or tool.get("poetry", {}).get("name") or folder.name)
    if (folder / "pixi.toml").is_file() or "pixi" in tool:
        env = folder / ".pixi" / "envs" / "default"
        if not _is_conda(env) and not (env / "bin" / "python").exists():
            raise LabshareError(f"{folder} is a pixi project without an environment yet; run `pixi install` there first.")
        return Project(folder, name, "pixi", env, pyproject)
    if pyproject is not None:
        if (folder / "uv.lock").is_file() or "uv" in tool:
            return Project(folder, name, "uv", uv_env_dir(folder), pyproject)
        if "rye" in tool or (folder / "requirements-dev.lock").is_file():
            return Project(folder, name, "rye", uv_env_dir(folder), pyproject)
        if "poetry" in tool or (folder / "poetry.lock").is_file():
            return Project(folder, name, "poetry", _poetry_env(folder, name), pyproject)
        if "pdm" in tool or (folder / "pdm.lock").is_file() or (folder / ".pdm-python").is_file():
            return Project(folder, name, "pdm", _pdm_env(folder), pyproject)
        if (folder / "hatch.toml").is_file() or "envs" in tool.get("hatch", {}):
            return Project(folder, name, "hatch", _hatch_env(folder, name), pyproject)
        if "project" in data:
            return Project(folder, name, "uv", uv_env_dir(folder), pyproject)
    local = _local_venv(folder)
    if local is not None:
        return Project(folder, folder.name, "conda" if _is_conda(local) else "venv", local, pyproject)
    raise LabshareError(
        f"No Python project found in {folder} (no pyproject.toml with a [project] table, virtual environment "
        f"or conda prefix); run `labshare env create {slug_name(folder.name)} --path {folder}` to make one."
    )


def slug_name(name: str) -> str:
    return kernels.slug(name)


def _declares_ipykernel(data: Mapping[str, Any]) -> bool:
    lists: list[Any] = [data.get("project", {}).get("dependencies", [])]
    lists += list(data.get("dependency-groups", {}).values())
    lists.append(data.get("tool", {}).get("uv", {}).get("dev-dependencies", []))
    lists.append(data.get("tool", {}).get("rye", {}).get("dev-dependencies", []))
    for items in lists:
        for item in items if isinstance(items, list) else []:
            if isinstance(item, str) and re.match(r"^\s*ipykernel\b", item, re.IGNORECASE):
                return True
    return False


# ---------------------------------------------------------------- register


def _extra_env(project: Project, places: kernels.KernelPlaces, text: str | None) -> dict[str, str]:
    """`[tool.labshare] env` from the pyproject; without one, what the last registration stored."""
    if text is not None and project.pyproject is not None:
        data = load_toml(text, project.pyproject)
        env = data.get("tool", {}).get("labshare", {}).get("env", {})
        return {str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else {}
    spec = kernels.read_spec(places.user / kernels.spec_name(project.path, project.label))
    meta = kernels.labshare_meta(spec) or {}
    return {str(k): str(v) for k, v in (meta.get("extra_env") or {}).items()}


def _register(places: kernels.KernelPlaces, project: Project, extra_env: Mapping[str, str]) -> EnvResult:
    assert project.env is not None and project.python is not None
    info = probe_python(project.python)
    if not info.ipykernel:
        raise LabshareError(
            f"ipykernel is not installed in {project.env}, so Jupyter could not start this kernel; "
            "run `labshare env adopt` on the project again and accept adding it."
        )
    name, display, spec_dir = kernels.register(places, kernels.Target(
        project=project.path, env=project.env, python=project.python, python_version=info.version,
        manager=project.manager, label=project.label, extra_env=dict(extra_env),
    ))
    return EnvResult(
        name=name, display_name=display, project=str(project.path), env=str(project.env),
        python=str(project.python), python_version=info.version, manager=project.manager, spec_dir=str(spec_dir),
    )


# ---------------------------------------------------------------- create


def _entries(folder: Path) -> set[str]:
    try:
        return set(os.listdir(folder))
    except FileNotFoundError:
        return set()


def _undo_new(folder: Path, before: set[str], made_root: Path | None) -> None:
    if made_root is not None:
        shutil.rmtree(made_root, ignore_errors=True)
        return
    for entry in _entries(folder) - before:
        target = folder / entry
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)


def create(
    places: kernels.KernelPlaces,
    root: Path,
    name: str,
    *,
    path: Path | None = None,
    python: str | None = None,
    packages: Sequence[str] = (),
    env_updates: Mapping[str, str | None] | None = None,
    progress: Progress = _quiet,
) -> EnvResult:
    """Make a uv project with ipykernel (and `packages`) in its `.venv`, and register its kernel.

    On any failure everything this call added is removed again, so the
    folder and the kernel list look as before.
    """
    validate_name(name)
    folder = Path(os.path.abspath(os.path.expanduser(str(path)))) if path else root / name
    if folder.exists() and not folder.is_dir():
        raise LabshareError(f"{folder} is a file; pick another --path or remove that file first.")
    if (folder / "pyproject.toml").exists():
        raise LabshareError(
            f"{folder} already holds a project (pyproject.toml); register it with `labshare env adopt {folder}`."
        )
    for package in packages:
        if not package.strip() or package.startswith("-"):
            raise LabshareError(f"{package!r} is not a package name; pass names such as numpy or 'pandas>=2'.")
    made_root = next((p for p in [*reversed(folder.parents), folder] if not p.exists()), None)
    before = _entries(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        folder = Path(os.path.realpath(folder))
        py = python or default_python()
        pref = ["--python", py, "--python-preference", "only-system" if python is None else "system"]
        progress(f"Creating project {name} in {folder}")
        _uv(["init", "--bare", "--no-workspace", "--vcs", "none", "--name", name, *pref, str(folder)],
            what="uv init", cwd=folder, hint="Check --python and that the folder is writable.")
        pyproject = folder / "pyproject.toml"
        if env_updates:
            text = pyproject.read_text(encoding="utf-8")
            write_atomic(pyproject, set_labshare_env(text, pyproject, env_updates), mode=0o644)
        wanted = ["ipykernel", *packages]
        progress(f"Installing {', '.join(wanted)} with uv")
        _uv(["add", *pref, *wanted], what="uv add " + " ".join(wanted), cwd=folder,
            hint="Check the package names, --python and your network, then try again.")
        project = Project(folder, name, "uv", uv_env_dir(folder), pyproject)
        extra = _extra_env(project, places, pyproject.read_text(encoding="utf-8"))
        result = _register(places, project, extra)
    except BaseException:
        _undo_new(folder, before, made_root)
        raise
    result.created_project = True
    result.installed = wanted
    progress(f"Registered kernel {result.name}")
    return result


# ---------------------------------------------------------------- adopt


def plan_adopt(places: kernels.KernelPlaces, path: Path) -> AdoptPlan:
    """Look at a project without changing it: what adopting it would change and ask."""
    project = detect(path)
    text = project.pyproject.read_text(encoding="utf-8") if project.pyproject else None
    plan = AdoptPlan(project=project, pyproject_text=text)
    if project.manager == "rye" and text is not None and project.pyproject is not None:
        plan.rye_text = migrate_rye(text, project.pyproject)
        if plan.rye_text is not None:
            plan.rye_diff = diff(text, plan.rye_text, "pyproject.toml")
    if project.env is None:
        raise LabshareError(
            f"Found a {project.manager} project in {project.path} but not its environment; "
            f"create it with {project.manager} first (for example `{project.manager} install`), then adopt again."
        )
    plan.env_exists = project.python is not None and project.python.exists()
    if not plan.env_exists and not project.uv_managed:
        raise LabshareError(f"The environment {project.env} has no working python; recreate it, then adopt again.")
    has_kernel = probe_python(project.python).ipykernel if plan.env_exists and project.python else False
    data = load_toml(plan.rye_text or text, project.pyproject) if text and project.pyproject else {}
    if project.uv_managed:
        plan.needs_ipykernel = not has_kernel and not _declares_ipykernel(data)
    else:
        plan.needs_ipykernel = not has_kernel
    roots = [project.path] + ([project.env] if project.env else [])
    plan.old_specs = kernels.find_old_specs(places, roots)
    return plan


def adopt(
    places: kernels.KernelPlaces,
    plan: AdoptPlan,
    *,
    migrate: bool,
    add_ipykernel: bool,
    replace_old: bool,
    env_updates: Mapping[str, str | None] | None = None,
    progress: Progress = _quiet,
) -> EnvResult:
    """Carry out a plan the user agreed to; on failure restore pyproject/uv.lock and drop a new env."""
    project = plan.project
    if plan.needs_ipykernel and not add_ipykernel:
        raise LabshareError(
            f"Not registered: {project.env} has no ipykernel, which Jupyter needs to start it; "
            "adopt again and accept adding it (or pass --yes)."
        )
    if env_updates and project.pyproject is None:
        pass  # stored in the kernelspec's metadata instead, see below
    pyproject = project.pyproject
    original = plan.pyproject_text
    lock = project.path / "uv.lock"
    lock_before = lock.read_bytes() if lock.is_file() else None
    env_before = project.env is not None and project.env.exists()
    changed: list[str] = []
    installed: list[str] = []
    text = original
    try:
        if pyproject is not None and text is not None:
            new = text
            if migrate and plan.rye_text is not None:
                new = plan.rye_text
            if env_updates:
                new = set_labshare_env(new, pyproject, env_updates)
            if new != text:
                progress(f"Updating {pyproject}")
                mode = pyproject.stat().st_mode & 0o777
                write_atomic(pyproject, new, mode=mode)
                changed.append(str(pyproject))
                text = new
        if project.uv_managed:
            if add_ipykernel and plan.needs_ipykernel:
                progress("Adding ipykernel to the dev group with uv")
                _uv(["add", "--dev", "--no-sync", "ipykernel"], what="uv add --dev ipykernel", cwd=project.path,
                    hint="Check your network, then try again.")
                changed.append(str(pyproject))
                installed.append("ipykernel")
                text = pyproject.read_text(encoding="utf-8") if pyproject else text
            if not plan.env_exists or changed or installed:
                progress(f"Syncing {project.env} with uv")
                _uv(["sync", "--inexact", "--python-preference", "system"], what="uv sync", cwd=project.path,
                    hint="Check the project's dependencies and your network, then try again.")
        elif add_ipykernel and plan.needs_ipykernel:
            progress(f"Installing ipykernel into {project.env} with uv")
            _uv(["pip", "install", "--python", str(project.python), "ipykernel"], what="uv pip install ipykernel",
                cwd=project.path, hint="Check your network, then try again.")
            installed.append("ipykernel")
        if text is not None:
            extra = _extra_env(project, places, text)
        else:
            extra = _extra_env(project, places, None)
            for key, value in (env_updates or {}).items():
                if value is None:
                    extra.pop(key, None)
                else:
                    extra[key] = value
        result = _register(places, project, extra)
    except BaseException:
        if pyproject is not None and original is not None and pyproject.read_text(encoding="utf-8") != original:
            write_atomic(pyproject, original, mode=pyproject.stat().st_mode & 0o777)
        if lock_before is None:
            lock.unlink(missing_ok=True)
        elif lock.read_bytes() != lock_before:
            write_atomic(lock, lock_before, mode=0o644)
        if not env_before and project.env is not None and project.env.exists() and project.uv_managed:
            shutil.rmtree(project.env, ignore_errors=True)
        raise
    if replace_old:
        for old in plan.old_specs:
            kernels.unregister(places, Path(old.resource_dir))
            result.replaced_specs.append(old.name)
    if lock_before is None and lock.is_file():
        changed.append(str(lock))
    result.changed_files = sorted(set(changed))
    result.installed = installed
    progress(f"Registered kernel {result.name}")
    return result


# ---------------------------------------------------------------- remove


def resolve(places: kernels.KernelPlaces, what: str) -> kernels.KernelEntry:
    """A kernel by spec name, project path, or project name (when that name is unambiguous)."""
    entries = [e for e in kernels.list_kernels(places) if e.status != kernels.SHADOWED]
    by_name = [e for e in entries if e.name == what.lower()]
    if by_name:
        return by_name[0]
    looks_like_path = os.sep in what or what.startswith(".") or Path(what).expanduser().exists()
    if looks_like_path:
        real = os.path.realpath(os.path.expanduser(what))
        absolute = os.path.abspath(os.path.expanduser(what))
        hits = [e for e in entries if e.project and e.project in (real, absolute)]
        if hits:
            return hits[0]
        raise LabshareError(f"No labshare kernel belongs to {what}; `labshare env list` shows the registered ones.")
    hits = [e for e in entries if e.owner == "labshare" and e.project and Path(e.project).name == what]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        options = ", ".join(f"{e.name} ({e.project})" for e in hits)
        raise LabshareError(f"{what!r} names {len(hits)} kernels: {options}; pass the kernel name or project path.")
    raise LabshareError(f"No kernel called {what!r}; `labshare env list` shows the names and projects.")


def remove(places: kernels.KernelPlaces, entry: kernels.KernelEntry, *, delete_files: bool) -> RemoveResult:
    """Unregister `entry`; with `delete_files`, also delete its project folder (the CLI has asked)."""
    resource_dir = Path(entry.resource_dir)
    if not resource_dir.parent.is_dir() or resource_dir.parent not in places.search:
        raise LabshareError(f"{entry.name} is built into Jupyter and cannot be removed.")
    kernels.unregister(places, resource_dir)
    deleted = False
    if delete_files and entry.project and os.path.isdir(entry.project):
        shutil.rmtree(entry.project)
        deleted = True
    return RemoveResult(
        name=entry.name, display_name=entry.display_name, project=entry.project, owner=entry.owner,
        removed_spec=True, deleted_files=deleted,
    )
