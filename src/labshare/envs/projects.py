"""Projects and their environments: make one with uv, or register the one a project already has.

uv is the engine (Rye's successor, shipped as labshare's own dependency);
other managers' environments are found (`detect`) and registered as they
are, never converted.  Whatever touches a member's files is planned first (so
the CLI can show it and ask), done with atomic writes checked by re-parsing
(`pyproject_edit`), and undone when a later step fails (`undo`): a failed
command leaves no half-registered kernel and no changed file behind.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from labshare.config.project import labshare_env, labshare_settings, load_toml
from labshare.envs import kernels, uv
from labshare.envs.detect import Project, declares_ipykernel, detect, uv_env_dir
from labshare.envs.naming import spec_name
from labshare.envs.pyproject_edit import (
    diff,
    merge_env,
    migrate_rye,
    save,
    set_labshare_env,
    set_labshare_gpus,
)
from labshare.envs.specfiles import labshare_meta, read_spec
from labshare.envs.undo import undone_on_failure
from labshare.errors import LabshareError

Progress = Callable[[str], None]
NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _quiet(message: str) -> None:
    pass


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
            raise LabshareError(
                f"--env {pair!r} is not KEY=VALUE; write it like --env CUDA_VISIBLE_DEVICES=0."
            )
        if key in ("PATH", "VIRTUAL_ENV", "CONDA_PREFIX"):
            raise LabshareError(
                f"--env cannot set {key}, which labshare sets to the project's environment."
            )
        out[key] = value or None
    return out


def _kernel_env(
    project: Project, places: kernels.KernelPlaces, updates: Mapping[str, str | None]
) -> dict[str, str]:
    """`[tool.labshare] env` from the pyproject; without one, what the last registration stored, updated."""
    if project.pyproject is not None:
        env = labshare_env(
            load_toml(project.pyproject.read_text(encoding="utf-8"), project.pyproject),
            project.pyproject,
        )
        return {str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else {}
    meta = labshare_meta(read_spec(places.user / spec_name(project.path, project.label))) or {}
    return merge_env({str(k): str(v) for k, v in (meta.get("extra_env") or {}).items()}, updates)


def _register(
    places: kernels.KernelPlaces, project: Project, extra_env: Mapping[str, str]
) -> EnvResult:
    assert project.env is not None and project.python is not None
    info = uv.probe_python(project.python)
    if not info.ipykernel:
        raise LabshareError(
            f"ipykernel is not installed in {project.env}, so Jupyter could not start this kernel; "
            "run `labshare env adopt` on the project again and accept adding it."
        )
    name, display, spec_dir = kernels.register(
        places,
        kernels.Target(
            project=project.path,
            env=project.env,
            python=project.python,
            python_version=info.version,
            manager=project.manager,
            label=project.label,
            extra_env=dict(extra_env),
        ),
    )
    return EnvResult(
        name=name,
        display_name=display,
        project=str(project.path),
        env=str(project.env),
        python=str(project.python),
        python_version=info.version,
        manager=project.manager,
        spec_dir=str(spec_dir),
    )


# ---------------------------------------------------------------- create


def _new_folder(root: Path, name: str, path: Path | None, packages: Sequence[str]) -> Path:
    """The folder `create` would fill, refused before anything is made when it cannot be used."""
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
            raise LabshareError(
                f"{package!r} is not a package name; pass names such as numpy or 'pandas>=2'."
            )
    return folder


def create(
    places: kernels.KernelPlaces,
    root: Path,
    name: str,
    *,
    path: Path | None = None,
    python: str | None = None,
    packages: Sequence[str] = (),
    env_updates: Mapping[str, str | None] | None = None,
    gpus: int | None = None,
    progress: Progress = _quiet,
) -> EnvResult:
    """Make a uv project with ipykernel (and `packages`) in its `.venv`, and register its kernel.

    On any failure everything this call added is removed again, so the
    folder and the kernel list look as before.
    """
    folder = _new_folder(root, name, path, packages)
    wanted = ["ipykernel", *packages]
    with undone_on_failure() as undo:
        undo.made(folder)
        undo.new_entries(folder)
        folder.mkdir(parents=True, exist_ok=True)
        folder = Path(os.path.realpath(folder))
        pref = [
            "--python",
            python or uv.default_python(),
            "--python-preference",
            "only-system" if python is None else "system",
        ]
        progress(f"Creating project {name} in {folder}")
        uv.run(
            [
                "init",
                "--bare",
                "--no-workspace",
                "--vcs",
                "none",
                "--name",
                name,
                *pref,
                str(folder),
            ],
            what="uv init",
            cwd=folder,
            hint="Check --python and that the folder is writable.",
        )
        pyproject = folder / "pyproject.toml"
        if env_updates or gpus is not None:
            text = pyproject.read_text(encoding="utf-8")
            save(pyproject, _labshare_settings(text, pyproject, env_updates or {}, gpus))
        progress(f"Installing {', '.join(wanted)} with uv")
        uv.run(
            ["add", *pref, *wanted],
            what="uv add " + " ".join(wanted),
            cwd=folder,
            hint="Check the package names, --python and your network, then try again.",
        )
        project = Project(folder, name, "uv", uv_env_dir(folder), pyproject)
        result = _register(places, project, _kernel_env(project, places, {}))
    result.created_project = True
    result.installed = wanted
    progress(f"Registered kernel {result.name}")
    return result


# ---------------------------------------------------------------- adopt


def plan_adopt(places: kernels.KernelPlaces, path: Path, gpus: int | None = None) -> AdoptPlan:
    """Look at a project without changing it: what adopting it would change and ask.

    `gpus` (from `--gpus N`) needs a pyproject to be kept in; refused here, before anything is asked.
    """
    project = detect(path)
    if gpus is not None and project.pyproject is None:
        raise LabshareError(
            f"{project.path} has no pyproject.toml to keep `gpus = {gpus}` in; "
            "adopt it without --gpus, or add a pyproject.toml first."
        )
    text = project.pyproject.read_text(encoding="utf-8") if project.pyproject else None
    if (
        text is not None and project.pyproject is not None
    ):  # a typo in [tool.labshare] stops it before any change
        labshare_settings(load_toml(text, project.pyproject), project.pyproject)
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
        raise LabshareError(
            f"The environment {project.env} has no working python; recreate it, then adopt again."
        )
    has_kernel = (
        uv.probe_python(project.python).ipykernel if plan.env_exists and project.python else False
    )
    data = load_toml(plan.rye_text or text, project.pyproject) if text and project.pyproject else {}
    plan.needs_ipykernel = not has_kernel and not (project.uv_managed and declares_ipykernel(data))
    plan.old_specs = kernels.find_old_specs(places, [project.path, project.env])
    return plan


def _labshare_settings(
    text: str, where: Path, env_updates: Mapping[str, str | None], gpus: int | None
) -> str:
    """`text` with the `[tool.labshare]` settings asked for: `--env` pairs, `--gpus N`."""
    if env_updates:
        text = set_labshare_env(text, where, env_updates)
    return text if gpus is None else set_labshare_gpus(text, where, gpus)


def _update_pyproject(
    plan: AdoptPlan,
    migrate: bool,
    env_updates: Mapping[str, str | None],
    gpus: int | None,
    progress: Progress,
) -> bool:
    """Write the agreed pyproject edits (Rye migration, `--env`, `--gpus`); whether the file changed."""
    pyproject, text = plan.project.pyproject, plan.pyproject_text
    if pyproject is None or text is None:
        return False
    new = _labshare_settings(
        plan.rye_text if migrate and plan.rye_text is not None else text,
        pyproject,
        env_updates,
        gpus,
    )
    if new == text:
        return False
    progress(f"Updating {pyproject}")
    save(pyproject, new)
    return True


def _add_ipykernel(project: Project, progress: Progress) -> None:
    """Into the dev group of a uv project (synced later), or straight into any other env."""
    if project.uv_managed:
        progress("Adding ipykernel to the dev group with uv")
        uv.run(
            ["add", "--dev", "--no-sync", "ipykernel"],
            what="uv add --dev ipykernel",
            cwd=project.path,
            hint="Check your network, then try again.",
        )
    else:
        progress(f"Installing ipykernel into {project.env} with uv")
        uv.run(
            ["pip", "install", "--python", str(project.python), "ipykernel"],
            what="uv pip install ipykernel",
            cwd=project.path,
            hint="Check your network, then try again.",
        )


def adopt(
    places: kernels.KernelPlaces,
    plan: AdoptPlan,
    *,
    migrate: bool,
    add_ipykernel: bool,
    replace_old: bool,
    env_updates: Mapping[str, str | None] | None = None,
    gpus: int | None = None,
    progress: Progress = _quiet,
) -> EnvResult:
    """Carry out a plan the user agreed to; on failure restore pyproject/uv.lock and drop a new env."""
    project = plan.project
    if plan.needs_ipykernel and not add_ipykernel:
        raise LabshareError(
            f"Not registered: {project.env} has no ipykernel, which Jupyter needs to start it; "
            "adopt again and accept adding it (or pass --yes)."
        )
    lock = project.path / "uv.lock"
    new_lock = not lock.is_file()
    changed: list[str] = []
    installed = ["ipykernel"] if plan.needs_ipykernel else []
    with undone_on_failure() as undo:
        if project.pyproject is not None:
            undo.file(project.pyproject)
        undo.file(lock)
        if project.uv_managed and project.env is not None:
            undo.made(project.env)
        if _update_pyproject(plan, migrate, env_updates or {}, gpus, progress):
            changed.append(str(project.pyproject))
        if installed:
            _add_ipykernel(project, progress)
            if project.uv_managed:
                changed.append(str(project.pyproject))
        if project.uv_managed and (not plan.env_exists or changed):
            progress(f"Syncing {project.env} with uv")
            uv.run(
                ["sync", "--inexact", "--python-preference", "system"],
                what="uv sync",
                cwd=project.path,
                hint="Check the project's dependencies and your network, then try again.",
            )
        result = _register(places, project, _kernel_env(project, places, env_updates or {}))
    if replace_old:
        for old in plan.old_specs:
            kernels.unregister(places, Path(old.resource_dir))
            result.replaced_specs.append(old.name)
    if new_lock and lock.is_file():
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
        raise LabshareError(
            f"No labshare kernel belongs to {what}; `labshare env list` shows the registered ones."
        )
    hits = [
        e for e in entries if e.owner == "labshare" and e.project and Path(e.project).name == what
    ]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        options = ", ".join(f"{e.name} ({e.project})" for e in hits)
        raise LabshareError(
            f"{what!r} names {len(hits)} kernels: {options}; pass the kernel name or project path."
        )
    raise LabshareError(
        f"No kernel called {what!r}; `labshare env list` shows the names and projects."
    )


def remove(
    places: kernels.KernelPlaces, entry: kernels.KernelEntry, *, delete_files: bool
) -> RemoveResult:
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
        name=entry.name,
        display_name=entry.display_name,
        project=entry.project,
        owner=entry.owner,
        removed_spec=True,
        deleted_files=deleted,
    )
