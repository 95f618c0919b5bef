"""labshare's import floors, as the README draws them: each part imports only from its own floor or below.

Every module's imports are read with `ast` (nothing is imported), including
those inside functions, since a lazy import runs upward all the same.
Imports under `if TYPE_CHECKING:` are allowed to go anywhere: they never
run, and a view in `render` may name the types of the parts it prints.
Pure and quick, as any user.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.quick  # pure: scripts/test runs it first, as an ordinary user

SRC = (
    Path(__file__).resolve().parent.parent / "src" / "labshare"
)  # the tree as it is, not an install of it

# From the ground up; a part is a top-level module or package of labshare.
FLOORS: tuple[frozenset[str], ...] = tuple(
    frozenset(f.split())
    for f in (
        # `kernelside` is copied into each kernel's environment and imports nothing of labshare
        "labshare errors xdg paths users files proc probe localports listeners install_hint render kernelside",
        "records",
        "config",
        "claims gpus notify",
        "envs",
        "server jupyterside hub",
        "connect monitor audit uninstall",
        "doctor fleet",
        "cli __main__",
    )
)

# Imported only by the code that runs inside the Jupyter server process (`jupyterside/`).
JUPYTER_SERVER = (
    "jupyter_server",
    "jupyterlab",
    "tornado",
    "jupyter_server_ydoc",
    "jupyter_server_nbmodel",
)


def floor(part: str) -> int:
    for level, parts in enumerate(FLOORS):
        if part in parts:
            return level
    raise AssertionError(
        f"src/labshare/{part} is on no floor: add it to FLOORS here and to the README's floors"
    )


def part_of(path: Path) -> str:
    relative = path.relative_to(SRC).with_suffix("").parts
    return "labshare" if relative == ("__init__",) else relative[0]


def type_only(tree: ast.Module) -> set[int]:
    """The ids of the nodes under `if TYPE_CHECKING:`."""
    hidden: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in (
            "TYPE_CHECKING",
            "typing.TYPE_CHECKING",
        ):
            hidden.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return hidden


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of each import that runs, absolute; `from a import b` gives a.b."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    hidden = type_only(tree)
    for node in ast.walk(tree):
        if id(node) in hidden:
            continue
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield from ((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)


def imported_part(name: str) -> str | None:
    """The labshare part a dotted name is in (`labshare.server.state` -> server), None outside labshare."""
    parts = name.split(".")
    if parts[0] != "labshare":
        return None
    if len(parts) == 1 or parts[1] == "__version__":
        return "labshare"
    return parts[1]


def modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_every_import_goes_to_the_same_floor_or_below() -> None:
    upward = []
    for path in modules():
        part = part_of(path)
        for line, name in imports(path):
            target = imported_part(name)
            if target is not None and target != part and floor(target) > floor(part):
                upward.append(
                    f"src/labshare/{path.relative_to(SRC)}:{line} imports {name} "
                    f"(floor {floor(part)} {part} -> floor {floor(target)} {target})"
                )
    assert upward == [], "imports that run upward:\n" + "\n".join(upward)


def test_only_the_code_inside_jupyter_imports_jupyters_server() -> None:
    """The CLI and the supervisor name jupyterside's classes to Jupyter as strings; they never load a server."""
    outside = [
        f"src/labshare/{path.relative_to(SRC)}:{line} imports {name}"
        for path in modules()
        if part_of(path) != "jupyterside"
        for line, name in imports(path)
        if name.split(".")[0] in JUPYTER_SERVER
    ]
    assert outside == [], "\n".join(outside)


def test_outside_jupyter_only_the_launchers_name_and_the_adapters_table_are_read() -> None:
    """`start` checks versions against the adapter's table and `ps` knows the launcher: neither may load Jupyter."""
    readable = {
        "labshare.jupyterside.internals",
        "labshare.jupyterside.lab",
        "labshare.jupyterside.singleuser",
    }
    read = [
        f"src/labshare/{path.relative_to(SRC)}:{line} imports {name}"
        for path in modules()
        if part_of(path) != "jupyterside"
        for line, name in imports(path)
        if name.startswith("labshare.jupyterside") and not any(name.startswith(m) for m in readable)
    ]
    assert read == [], "\n".join(read)
    for module in readable:
        path = SRC.joinpath(*module.split(".")[1:]).with_suffix(".py")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        loaded = [
            ast.unparse(n)
            for n in top
            if any(
                name.split(".")[0] in (*JUPYTER_SERVER, "jupyter_client")
                for name in (
                    [a.name for a in n.names] if isinstance(n, ast.Import) else [n.module or ""]
                )
            )
        ]
        assert loaded == [], f"{module} imports Jupyter when imported: {loaded}"


def test_the_supervisor_stays_small() -> None:
    """It lives as long as the member's server, so it loads the state file's code and the ground floor only."""
    path = SRC / "server" / "supervise.py"
    allowed = FLOORS[0] | FLOORS[1]
    heavy = [
        name
        for _, name in imports(path)
        if imported_part(name) not in (None, *allowed)
        and not name.startswith("labshare.server.state")
    ]
    assert heavy == [], f"server/supervise.py imports {heavy}"


def test_every_part_is_on_a_floor() -> None:
    parts = {part_of(path) for path in modules()}
    assert all(floor(part) >= 0 for part in parts)
    assert set().union(*FLOORS) <= parts, "FLOORS names a part that is gone"
