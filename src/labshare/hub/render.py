"""JupyterHub configuration as the text of a file an admin can read: `c.Section.trait = value` lines.

The text is made mechanically from the `Config` that `apply_config` filled,
so the file and the tested data cannot drift apart; `check_python` loads the
text back with traitlets' own file loader and insists on the same values.
"""

from __future__ import annotations

import pprint
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

MARK = "labshare-generated"
# Sections in the order an admin reads them: the hub, who may log in, what each server gets.
ORDER = [
    "JupyterHub",
    "Authenticator",
    "PAMAuthenticator",
    "Spawner",
    "SystemdSpawner",
    "SlurmSpawner",
]


def header(command: str, source: str, notes: Sequence[str] = ()) -> list[str]:
    """The file's first lines: who wrote it (the mark `is_ours` looks for), then what it leaves out."""
    lines = [
        f"# {MARK}: written by `{command}` from {source}.",
        "# Re-run that command after changing the site config; edits made here are lost then.",
    ]
    for note in notes:
        lines += textwrap.wrap(
            note,
            width=100,
            initial_indent="# Note: ",
            subsequent_indent="#   ",
            break_on_hyphens=False,
        )
    return lines


def _literal(value: Any, indent: int) -> str:
    if isinstance(value, (set, frozenset)):
        return "{" + ", ".join(repr(v) for v in sorted(value)) + "}" if value else "set()"
    text = pprint.pformat(value, width=100 - indent, sort_dicts=False)
    return text.replace("\n", "\n" + " " * indent)


def python_file(c: Any, head: list[str]) -> str:
    """`c` (a traitlets Config) as a jupyterhub_config.py."""
    sections = sorted(c, key=lambda s: (ORDER.index(s) if s in ORDER else len(ORDER), s))
    lines = [*head, "import sys", "", "c = get_config()  # noqa: F821", ""]
    for section in sections:
        for trait, value in c[section].items():
            target = f"c.{section}.{trait} = "
            lines.append(target + _literal(value, 0))
        lines.append("")
    return "\n".join(lines)


def yaml_file(values: Mapping[str, Any], head: list[str]) -> str:
    import yaml

    body = yaml.safe_dump(dict(values), sort_keys=False, default_flow_style=False, width=100)
    return "\n".join(head) + "\n" + body


def load_python(text: str) -> Any:
    """Load config text with traitlets' own loader (what `jupyterhub -f` does) and return the Config."""
    import os
    import tempfile

    from traitlets.config.loader import PyFileConfigLoader

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "jupyterhub_config.py")
        with open(path, "w") as handle:
            handle.write(text)
        return PyFileConfigLoader("jupyterhub_config.py", path=tmp).load_config()


def is_ours(text: str) -> bool:
    return MARK in "\n".join(text.splitlines()[:3])
