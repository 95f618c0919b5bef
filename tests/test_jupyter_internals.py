"""Every private name of Jupyter's packages that labshare uses is in `jupyterside/internals.py`, and is there.

An upgrade of jupyter_server, jupyter_client, jupyter-server-ydoc or
jupyter-server-nbmodel that removes one fails here, naming the adapter and
the name, instead of somewhere inside a running server.  Pure and quick:
nothing is started.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from labshare.jupyterside.internals import USES, Internal

pytestmark = pytest.mark.quick  # pure: scripts/test runs it first, as an ordinary user

ADAPTER = "src/labshare/jupyterside/internals.py"
SRC = Path(__file__).resolve().parent.parent / "src" / "labshare"


def owner_and_attribute(use: Internal) -> tuple[object, str]:
    """The object the private name hangs on (imported), and the name."""
    parts = use.name.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for part in parts[split:-1]:
            found = getattr(found, part)
        return found, parts[-1]
    raise ImportError(use.name)


@pytest.mark.parametrize("use", USES, ids=[u.name for u in USES])
def test_each_private_name_the_adapter_uses_is_there(use: Internal) -> None:
    version = metadata.version(use.package)
    missing = f"{ADAPTER} uses {use.name}, which {use.package} {version} does not have (tested {use.tested})"
    try:
        owner, attribute = owner_and_attribute(use)
    except (ImportError, AttributeError) as exc:
        pytest.fail(f"{missing}: {exc}")
    if use.on_instances:  # set in the class's own code: look for it there
        assert f".{attribute}" in inspect.getsource(owner), missing  # type: ignore[arg-type]
    else:
        assert hasattr(owner, attribute), missing


@pytest.mark.parametrize("use", USES, ids=[u.name for u in USES])
def test_what_is_installed_is_what_each_use_was_tested_with(use: Internal) -> None:
    version = metadata.version(use.package)
    assert SpecifierSet(use.tested).contains(version, prereleases=True), (
        f"{use.package} {version} is installed, but {ADAPTER} says {use.name} was tested with {use.tested}: "
        "run the tests of the part that uses it, then widen the range there"
    )


def test_labshare_allows_no_version_the_adapter_was_not_tested_with() -> None:
    """pyproject's bounds are the tested ones: an install never gets a version `start` would warn about."""
    requires = {
        canonicalize_name(r.name): r.specifier
        for r in map(Requirement, metadata.requires("labshare") or [])
    }
    for use in USES:
        allowed = requires[canonicalize_name(use.package)]
        for operator in ("<", ">="):
            tested = {s.version for s in SpecifierSet(use.tested) if s.operator == operator}
            bound = {s.version for s in allowed if s.operator == operator}
            assert bound and bound == tested, (
                f"labshare requires {use.package} {allowed or 'without bounds'}, "
                f"{ADAPTER} says tested {use.tested}"
            )


def test_no_other_module_touches_a_private_name_the_adapter_owns() -> None:
    """A new use outside the adapter would not be in its table, so no test or `doctor` would know of it."""
    owned = {u.name.rsplit(".", 1)[1] for u in USES}
    jupyter = ("jupyter_server", "jupyter_client", "jupyter_server_ydoc", "jupyter_server_nbmodel")
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if path == SRC.parent.parent / ADAPTER:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in owned:
                found.append(f"{path.relative_to(SRC.parent)}:{node.lineno} .{node.attr}")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(jupyter):
                private = [
                    n
                    for n in [*(node.module or "").split("."), *(a.name for a in node.names)]
                    if n.startswith("_") and not n.startswith("__")
                ]
                if private:
                    found.append(
                        f"{path.relative_to(SRC.parent)}:{node.lineno} from {node.module} import {private}"
                    )
    assert found == [], f"private names of Jupyter's packages belong in {ADAPTER}: {found}"
