"""The edits labshare makes to a member's pyproject.toml (reading its `[tool.labshare]` is `config.project`).

The edits are moving Rye's `dev-dependencies` into `[dependency-groups]`
(uv ignores the former) and setting `[tool.labshare] env` or `gpus`.  A
pyproject is the member's own file, full of comments and layout they chose, so edits go
through tomlkit, which changes only the keys it is told to.  Each edit is then
checked by re-reading the result with tomllib: it must equal the old document
with exactly the intended change, or nothing is written and the member is told
to make the change by hand.  tomlkit is imported only here, only when a file
is edited, so commands that merely read pay nothing for it.
"""

from __future__ import annotations

import copy
import difflib
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from labshare.config.project import labshare_env, load_toml
from labshare.errors import LabshareError
from labshare.files import write_atomic

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def merge_env(current: Mapping[str, str], updates: Mapping[str, str | None]) -> dict[str, str]:
    """`current` with `updates` applied, where None drops a key (as `--env KEY=` asks)."""
    return {k: v for k, v in {**current, **updates}.items() if v is not None}


def save(path: Path, text: str) -> None:
    """Replace the file atomically, keeping its permission bits."""
    write_atomic(path, text, mode=path.stat().st_mode & 0o777)


def diff(before: str, after: str, name: str) -> str:
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            f"{name} (now)",
            f"{name} (after)",
        )
    )


def _edit(
    text: str, where: Path, what: str, change: Callable[[Any], None], expected: dict[str, Any]
) -> str:
    """Apply `change` to the tomlkit document of `text` (typed Any: tomlkit's tree is dynamic);
    the result must read back as `expected`."""
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    by_hand = f"labshare could not {what} in {where} without touching anything else; make that change by hand."
    try:
        doc = tomlkit.parse(text)
        change(doc)
        new = doc.as_string()
    except (TOMLKitError, AttributeError, KeyError, TypeError, ValueError) as exc:
        raise LabshareError(by_hand) from exc
    try:
        after = tomllib.loads(new)
    except tomllib.TOMLDecodeError as exc:
        raise LabshareError(by_hand) from exc
    if after != expected:
        raise LabshareError(by_hand)
    return new


def migrate_rye(text: str, where: Path) -> str | None:
    """Move `[tool.rye] dev-dependencies` into `[dependency-groups] dev` (uv ignores the former).

    Returns the new text, or None when there is nothing to move.  An existing
    dev group keeps its own layout and gains only the entries it lacks.
    """
    data = load_toml(text, where)
    dev = data.get("tool", {}).get("rye", {}).get("dev-dependencies")
    if dev is None:
        return None
    groups = data.get("dependency-groups", {})
    if not isinstance(dev, list) or not isinstance(groups, dict):
        raise LabshareError(
            f"{where} has an unusual [tool.rye] layout; move dev-dependencies by hand."
        )
    existing = list(groups.get("dev", []))
    added = [d for d in dev if d not in existing]
    expected = copy.deepcopy(data)
    del expected["tool"]["rye"]["dev-dependencies"]
    expected.setdefault("dependency-groups", {})["dev"] = existing + added

    def change(doc: Any) -> None:
        import tomlkit
        from tomlkit.items import InlineTable

        del doc["tool"]["rye"]["dev-dependencies"]
        if "dependency-groups" not in doc:
            doc.append("dependency-groups", tomlkit.table())
        target = doc["dependency-groups"]
        if isinstance(target, InlineTable):
            raise LabshareError(
                f"{where}: [dependency-groups] is written inline; move dev-dependencies by hand."
            )
        if "dev" in target:
            target["dev"].extend(added)
            return
        items = tomlkit.array()
        items.extend(added)
        target["dev"] = items.multiline(True)

    return _edit(text, where, "move [tool.rye] dev-dependencies", change, expected)


def set_labshare_env(text: str, where: Path, updates: Mapping[str, str | None]) -> str:
    """Set (or, for None, drop) keys of `[tool.labshare] env` and nothing else.

    A `[tool.labshare.env]` table is edited key by key, so its comments stay;
    an inline `env = { … }` is written anew in the `{ KEY = "value" }` style.
    """
    data = _plain_labshare(load_toml(text, where), where, "add the env table by hand")
    current = labshare_env(data, where)
    if not isinstance(current, dict):
        raise LabshareError(
            f'{where}: tool.labshare.env is not a table; make it one, like env = {{A = "1"}}.'
        )
    merged = merge_env(current, updates)
    expected = copy.deepcopy(data)
    expected.setdefault("tool", {}).setdefault("labshare", {})["env"] = merged

    def change(doc: Any) -> None:
        from tomlkit.items import Table

        own = _labshare_table(doc)
        env = own.get("env")
        if isinstance(env, Table):
            for key, value in updates.items():
                if value is None:
                    env.pop(key, None)
                else:
                    env[key] = value
        else:
            own["env"] = _inline(merged)

    return _edit(text, where, "set [tool.labshare] env", change, expected)


def set_labshare_gpus(text: str, where: Path, count: int) -> str:
    """Set `[tool.labshare] gpus`, the cards each of the project's kernels leases, and nothing else."""
    data = _plain_labshare(load_toml(text, where), where, f"add `gpus = {count}` to it by hand")
    expected = copy.deepcopy(data)
    expected.setdefault("tool", {}).setdefault("labshare", {})["gpus"] = count

    def change(doc: Any) -> None:
        _labshare_table(doc)["gpus"] = count

    return _edit(text, where, "set [tool.labshare] gpus", change, expected)


def _plain_labshare(data: dict[str, Any], where: Path, by_hand: str) -> dict[str, Any]:
    """`data`, if its `tool.labshare` (when there is one) is a table labshare can edit."""
    tool = data.get("tool", {})
    if not isinstance(tool, dict) or not isinstance(tool.get("labshare", {}), dict):
        raise LabshareError(f"{where} sets tool.labshare in an unusual way; {by_hand}.")
    return data


def _labshare_table(doc: Any) -> Any:
    """The document's `[tool.labshare]` table, added at the end (under a bare `tool`) when missing."""
    import tomlkit

    own = doc["tool"].get("labshare") if "tool" in doc else None
    if own is None:
        tool_table = tomlkit.table(is_super_table=True)
        tool_table["labshare"] = tomlkit.table()
        doc.append("tool", tool_table)
        own = doc["tool"]["labshare"]
    return own


def _inline(values: Mapping[str, Any]) -> Any:
    """An inline table spaced as uv and most formatters write one: `{ A = "1", B = "2" }`, or `{}`."""
    import tomlkit

    pairs = ", ".join(
        f"{tomlkit.key(k).as_string()} = {tomlkit.item(v).as_string()}" for k, v in values.items()
    )
    return tomlkit.parse(f"v = {{ {pairs} }}\n" if pairs else "v = {}\n")["v"]
