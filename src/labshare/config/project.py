"""A project's own settings: `[tool.labshare]` in its pyproject.toml, read and checked against the schema.

Read at each kernel start (by the kernel provisioner and the GPU gate), by
`env` and by `doctor`, so it sits on the config floor, below all of them;
the edits labshare makes to the file are `envs.pyproject_edit`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from labshare.config import schema
from labshare.errors import LabshareError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def load_toml(text: str, where: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LabshareError(f"{where} is not valid TOML ({exc}); fix it and try again.") from exc


def _own(data: Mapping[str, Any]) -> Mapping[str, Any]:
    tool = data.get("tool", {})
    own = tool.get("labshare", {}) if isinstance(tool, dict) else {}
    return own if isinstance(own, dict) else {}


def labshare_settings(data: Mapping[str, Any], where: Path) -> Mapping[str, Any]:
    """`[tool.labshare]` as written, refused if it holds a key labshare does not read or a `gpus` that is no count.

    Every reader goes through here (env create/adopt, each kernel start,
    doctor), so a typo such as `gpu = 0` is an error everywhere instead of
    a setting silently ignored and a card silently leased.
    """
    own = _own(data)
    schema.parse(where, "tool.labshare", own)
    return own


def labshare_env(data: Mapping[str, Any], where: Path) -> object:
    """`tool.labshare.env` as written (a table, or whatever the member put there); {} when absent."""
    return labshare_settings(data, where).get("env", {})


def project_settings(folder: Path) -> Mapping[str, Any]:
    """A project's `[tool.labshare]`, checked (`labshare_settings`); {} without a pyproject.

    Read at each kernel start, so a changed `gpus` applies to the next kernel.
    """
    path = folder / "pyproject.toml"
    if not path.is_file():
        return {}
    return labshare_settings(load_toml(path.read_text(encoding="utf-8"), path), path)


def project_gpus(folder: Path) -> int | None:
    """What a project's pyproject asks its kernels to lease (0: CPU only); None without a pyproject or the key."""
    return project_settings(folder).get("gpus")
