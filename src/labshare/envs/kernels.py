"""Kernelspecs: registering, listing and pruning, without spawning Jupyter.

`ipykernel install` costs about a second per call and silently overwrites a
spec of the same name, so labshare writes `kernel.json` itself, named and
labelled by `naming` and put on disk atomically by `specfiles`.  Listing
mirrors `jupyter_client.KernelSpecManager.find_kernel_specs` with only
`jupyter_core.paths`, which keeps `labshare env list` and `labshare start`
cheap.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labshare.envs.kerneltools import KernelTools
from labshare.envs.naming import PREFIX, base_label, distinct_labels, spec_name
from labshare.envs.specfiles import (
    ipykernel_resources,
    labshare_meta,
    locked,
    read_spec,
    remove_spec,
    spec_dirs,
    write_spec,
)
from labshare.errors import LabshareError
from labshare.gpus.gate import Gated

# 2: uv on every kernel's PATH, UV_PROJECT in uv projects, labshare's %pip (envs/refresh.py mends older).
SCHEMA = 2
NATIVE_KERNEL_NAME = "python3"
# jupyter_client swaps these argv[0] names for its own interpreter, so they are never stale.
SELF_PYTHONS = {
    "python",
    f"python{sys.version_info[0]}",
    "python{}.{}".format(*sys.version_info[:2]),
}
_VALID_SPEC_NAME = re.compile(r"^[a-z0-9._\-]+$", re.IGNORECASE)

OK, STALE, SHADOWED, DUPLICATE = "ok", "stale", "shadowed", "duplicate label"


@dataclass(frozen=True)
class KernelPlaces:
    """Where kernelspecs are written (`user`) and, in Jupyter's order, read (`search`).

    `tools` is the member's folder of what every labshare kernel shares (uv, `%pip`); None writes
    specs without them.
    """

    user: Path
    search: tuple[Path, ...]
    tools: KernelTools | None = None

    @classmethod
    def current(cls) -> KernelPlaces:
        """Jupyter's own answer for this process's environment (honours JUPYTER_DATA_DIR, JUPYTER_PATH)."""
        from jupyter_core.paths import jupyter_data_dir, jupyter_path

        user = Path(jupyter_data_dir()) / "kernels"
        search = tuple(Path(p) for p in jupyter_path("kernels") if not is_own(Path(p)))
        if user not in search:
            search = (user, *search)
        return cls(user=user, search=search, tools=KernelTools.current())


def own_kernel_dirs() -> tuple[Path, ...]:
    """Where the kernelspecs that would run labshare's own environment live, so members never get them.

    ipykernel's built-in `python3` (jupyter_client's fallback for that name) and, where
    labshare has an environment of its own (uv tool, pipx, a venv), that environment's
    kernels folder, which holds the copy of `python3` ipykernel's wheel installs.
    """
    found = [r for r in [ipykernel_resources()] if r is not None]
    if sys.prefix != sys.base_prefix:
        found.append(Path(sys.prefix) / "share" / "jupyter" / "kernels")
    return tuple(found)


def is_own(path: Path) -> bool:
    """Whether a kernels folder, or a spec's own folder, lies in one of `own_kernel_dirs`."""
    real = os.path.realpath(path)
    return any(
        real == d or real.startswith(d + os.sep) for d in map(os.path.realpath, own_kernel_dirs())
    )


@dataclass(frozen=True)
class Target:
    """An environment to register: everything kernel.json is rendered from."""

    project: Path
    env: Path
    python: Path
    python_version: str
    manager: str
    label: str
    extra_env: Mapping[str, str] = field(default_factory=dict)


@dataclass
class KernelEntry:
    """One kernelspec as Jupyter would list it, with labshare's verdict on it."""

    name: str
    display_name: str
    owner: str
    status: str
    project: str | None
    python: str | None
    manager: str | None
    env: str | None
    resource_dir: str
    problems: list[str] = field(default_factory=list)


def render(target: Target, display_name: str, tools: KernelTools | None = None) -> dict[str, Any]:
    """The kernel.json for `target`: its own python, its env first on PATH (labshare's uv last), our metadata."""
    env_vars: dict[str, str] = {}
    if target.manager in ("conda", "pixi"):
        env_vars["CONDA_PREFIX"] = str(target.env)
    else:
        env_vars["VIRTUAL_ENV"] = str(target.env)
    env_vars["PATH"] = f"{target.env / 'bin'}{os.pathsep}${{PATH}}"
    if tools is not None:
        env_vars["PATH"] += f"{os.pathsep}{tools.bin_dir}"
        env_vars.update(tools.kernel_env(target.project, target.env, target.manager))
    env_vars.update(target.extra_env)
    ipykernel_tail = tools.kernel_args() if tools is not None else []
    return {
        "argv": Gated(
            [
                str(target.python),
                "-m",
                "ipykernel_launcher",
                "-f",
                "{connection_file}",
                *ipykernel_tail,
            ],
            target.project,
        ).argv(),  # behind the GPU gate, whichever Jupyter client starts it
        "display_name": display_name,
        "language": "python",
        "interrupt_mode": "signal",
        "env": env_vars,
        "metadata": {
            "debugger": True,
            "labshare": {
                "schema": SCHEMA,
                "project": str(target.project),
                "label": target.label,
                "env": str(target.env),
                "manager": target.manager,
                "python": str(target.python),
                "python_version": target.python_version,
                "extra_env": dict(target.extra_env),
            },
        },
    }


def render_in(places: KernelPlaces, target: Target, display_name: str) -> dict[str, Any]:
    """`render` for a spec about to be written to `places`: the tools it names are made first."""
    if places.tools is not None:
        places.tools.ensure()
    return render(target, display_name, places.tools)


def _relabel(places: KernelPlaces) -> None:
    """Give every labshare spec in the user dir its display name, distinct from all others visible."""
    ours: list[tuple[Path, dict[str, Any], dict[str, Any]]] = []
    taken: list[str] = []
    seen: set[str] = set()
    for directory in places.search:
        for resource_dir in spec_dirs(directory):
            key = resource_dir.name.lower()
            if key in seen:
                continue
            seen.add(key)
            spec = read_spec(resource_dir)
            meta = labshare_meta(spec)
            if spec is None or problems_of(spec):
                continue  # a dead spec neither needs a distinct label nor forces one on others
            if meta is not None and directory == places.user and not meta.get("default"):
                ours.append((resource_dir, spec, meta))
            else:
                taken.append(str(spec.get("display_name", resource_dir.name)))
    labels = distinct_labels(
        [
            (
                str(m.get("label") or Path(m["project"]).name),
                str(m.get("python_version", "")),
                str(m["project"]),
            )
            for _, _, m in ours
        ],
        taken,
    )
    for (resource_dir, spec, _), label in zip(ours, labels, strict=True):
        if spec.get("display_name") != label:
            write_spec(places.user, resource_dir.name, {**spec, "display_name": label})


def register(places: KernelPlaces, target: Target) -> tuple[str, str, Path]:
    """Write (or update in place) the spec for `target`; return its name, display name and folder."""
    name = spec_name(target.project, target.label)
    with locked(places.user):
        stale_same_project = [
            d
            for d in spec_dirs(places.user)
            if d.name != name
            and (m := labshare_meta(read_spec(d)))
            and os.path.realpath(m["project"]) == os.path.realpath(target.project)
        ]
        for old in stale_same_project:
            remove_spec(old)
        spec = render_in(places, target, base_label(target.label, target.python_version))
        dest = write_spec(places.user, name, spec)
        _relabel(places)
        spec = read_spec(dest) or {}
    return name, str(spec.get("display_name", name)), dest


def unregister(places: KernelPlaces, resource_dir: Path) -> None:
    with locked(places.user):
        remove_spec(resource_dir)
        _relabel(places)


def _interpreter_problem(argv0: str, env: Mapping[str, Any]) -> str | None:
    if not argv0:
        return "its command line is empty"
    if argv0 in SELF_PYTHONS:
        return None
    if os.sep in argv0:
        if not os.path.exists(argv0):
            return f"interpreter {argv0} is missing"
        return None
    path = str(env.get("PATH", os.environ.get("PATH", ""))).replace(
        "${PATH}", os.environ.get("PATH", "")
    )
    return None if shutil.which(argv0, path=path) else f"command {argv0} is not on PATH"


def problems_of(spec: Mapping[str, Any] | None) -> list[str]:
    """Why a spec cannot start (file checks only): missing interpreter, or its labshare project gone."""
    if spec is None:
        return ["kernel.json cannot be read"]
    argv = spec.get("argv") or [""]
    env = spec.get("env")
    env = env if isinstance(env, dict) else {}
    gated = Gated.of(argv)
    command = gated.command if gated is not None else argv
    found = [p for p in [_interpreter_problem(str(command[0]), env)] if p]
    if gated is not None and not os.path.exists(str(argv[0])):
        found.append(
            f"labshare's own Python {argv[0]}, which starts it under the GPU rules, is missing"
        )
    meta = labshare_meta(spec)
    if meta is not None and not os.path.isdir(meta["project"]):
        found.append(f"project {meta['project']} is gone")
    return found


def _entry(resource_dir: Path, spec: dict[str, Any] | None) -> KernelEntry:
    meta = labshare_meta(spec)
    argv = (spec or {}).get("argv") or [None]
    return KernelEntry(
        name=resource_dir.name.lower(),
        display_name=str((spec or {}).get("display_name", resource_dir.name)),
        owner="labshare" if meta is not None else "foreign",
        status=OK,
        project=meta["project"] if meta else None,
        python=(meta or {}).get("python") or (str(argv[0]) if argv[0] else None),
        manager=(meta or {}).get("manager"),
        env=(meta or {}).get("env"),
        resource_dir=str(resource_dir),
        problems=problems_of(spec),
    )


def list_kernels(places: KernelPlaces) -> list[KernelEntry]:
    """Every kernelspec a member's server offers, plus the ones it hides, each with a status.

    labshare's own `python3` is not among them: the server never offers it (see `own_kernel_dirs`).

    Status, most serious first: `stale` (cannot start), `shadowed` (a spec of the same name
    earlier on Jupyter's path wins), `duplicate label` (two tiles read the same), `ok`.
    """
    entries: list[KernelEntry] = []
    winners: dict[str, KernelEntry] = {}
    for directory in places.search:
        for resource_dir in spec_dirs(directory):
            entry = _entry(resource_dir, read_spec(resource_dir))
            if not _VALID_SPEC_NAME.match(entry.name):
                entry.problems.append("its folder name is not a valid kernel name")
            stale = bool(entry.problems)
            if entry.name in winners:
                entry.problems.append(f"hidden by {winners[entry.name].resource_dir}")
                entry.status = SHADOWED
            else:
                winners[entry.name] = entry
            if stale:
                entry.status = STALE
            entries.append(entry)
    labels: dict[str, int] = {}
    for e in winners.values():
        if e.status != STALE:
            labels[e.display_name] = labels.get(e.display_name, 0) + 1
    for e in winners.values():
        if e.status == OK and labels.get(e.display_name, 0) > 1:
            e.status = DUPLICATE
            e.problems.append(f"another kernel is also called {e.display_name!r}")
    return entries


def is_writable(resource_dir: Path) -> bool:
    return os.access(resource_dir.parent, os.W_OK | os.X_OK)


def prune_candidates(places: KernelPlaces, *, foreign: bool = False) -> list[KernelEntry]:
    """Stale specs that `kernels prune` would remove: labshare's own, and foreign ones only if asked."""
    return [
        e
        for e in list_kernels(places)
        if e.status == STALE
        and (e.owner == "labshare" or foreign)
        and e.name != NATIVE_KERNEL_NAME
        and Path(e.resource_dir).parent in places.search
    ]


def prune(places: KernelPlaces, entries: Sequence[KernelEntry]) -> list[KernelEntry]:
    """Remove the given specs (re-checked under the lock, so a spec fixed meanwhile stays)."""
    removed: list[KernelEntry] = []
    with locked(places.user):
        for e in entries:
            resource_dir = Path(e.resource_dir)
            if not resource_dir.is_dir() or not problems_of(read_spec(resource_dir)):
                continue
            remove_spec(resource_dir)
            removed.append(e)
        _relabel(places)
    return removed


def prune_stale(kernels_dir: Path | None = None) -> list[str]:
    """Remove labshare's own kernelspecs whose interpreter or project is gone; return their names.

    Meant for `labshare start`: it reads only `kernel.json` files in the user's kernels dir
    and checks that two paths exist, so it costs milliseconds and never touches a spec
    labshare did not write.  A spec whose only fault is the labshare Python in front of its
    GPU gate (labshare reinstalled elsewhere) is kept, behind this labshare's gate instead.
    Errors are swallowed: pruning must never stop a server start.
    """
    if kernels_dir is None:
        from jupyter_core.paths import jupyter_data_dir

        kernels_dir = Path(jupyter_data_dir()) / "kernels"
    removed: list[str] = []
    for resource_dir in spec_dirs(kernels_dir):
        if not resource_dir.name.startswith(PREFIX):
            continue
        spec = read_spec(resource_dir)
        if spec is None or labshare_meta(spec) is None or not problems_of(spec):
            continue
        try:
            moved = _regated(spec)
            if moved is not None and not problems_of(moved):
                write_spec(kernels_dir, resource_dir.name, moved)
                continue
            remove_spec(resource_dir)
            removed.append(resource_dir.name)
        except LabshareError:
            continue
    return removed


def _regated(spec: Mapping[str, Any]) -> dict[str, Any] | None:
    """`spec` behind this labshare's gate, where the labshare Python it names is gone; else None."""
    argv = spec.get("argv") or []
    gated = Gated.of(argv)
    if gated is None or os.path.exists(str(argv[0])):
        return None
    return {**spec, "argv": gated.argv()}


def find_old_specs(places: KernelPlaces, roots: Sequence[Path]) -> list[KernelEntry]:
    """Foreign, writable specs whose interpreter lives under one of `roots` (the guide's hand-made ones)."""
    real_roots = [os.path.realpath(r) for r in roots]
    found = []
    for e in list_kernels(places):
        if (
            e.owner != "foreign"
            or not e.python
            or os.sep not in e.python
            or e.name == NATIVE_KERNEL_NAME
        ):
            continue
        py = os.path.abspath(e.python)
        inside = any(
            py == r or py.startswith(r + os.sep)
            for r in {*real_roots, *map(os.path.abspath, roots)}
        )
        if inside and is_writable(Path(e.resource_dir)):
            found.append(e)
    return found


@dataclass
class PruneResult:
    """What `kernels prune` found and removed; stale foreign specs it left alone are named too."""

    candidates: list[KernelEntry] = field(default_factory=list)
    removed: list[KernelEntry] = field(default_factory=list)
    stale_foreign_kept: list[str] = field(default_factory=list)


def plan_prune(places: KernelPlaces, *, foreign: bool = False) -> PruneResult:
    """What `kernels prune` would remove, and the stale specs of others it leaves unless `foreign`."""
    stale = prune_candidates(places, foreign=True)
    candidates = stale if foreign else [e for e in stale if e.owner == "labshare"]
    kept = [] if foreign else [e.name for e in stale if e.owner != "labshare"]
    return PruneResult(candidates=candidates, stale_foreign_kept=kept)
