"""Kernel names and the labels people read in JupyterLab's launcher.

The name is for programs: derived from the project's real path, so
re-registering a project updates its spec in place and two projects never
collide.  The label is for people: `<project> (Python X.Y)`, lengthened by
just enough of the path to tell apart two tiles that would read the same.
Pure functions, so the rules are tested without touching a disk.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

PREFIX = "labshare-"


def slug(text: str) -> str:
    """Lowercase ASCII words joined by '-', so `My_Project` and `my project` read alike but stay valid."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    out = "-".join(words)[:40].strip("-")
    return out or "project"


def project_key(project: Path) -> str:
    return hashlib.sha256(os.fsencode(os.path.realpath(project))).hexdigest()[:8]


def spec_name(project: Path, label: str | None = None) -> str:
    """`labshare-<slug>-<8 hex of sha256(realpath)>`: deterministic and collision-free per folder."""
    return f"{PREFIX}{slug(label or Path(os.path.realpath(project)).name)}-{project_key(project)}"


def base_label(label: str, python_version: str) -> str:
    short = ".".join(str(python_version).split(".")[:2])
    return f"{label} (Python {short})" if short else label


def _tail(path: str, k: int) -> str:
    parts = Path(path).parts
    if k >= len(parts):
        return path
    return "/".join(parts[-k:])


def distinct_labels(items: Sequence[tuple[str, str, str]], taken: Sequence[str] = ()) -> list[str]:
    """Display names for (label, python_version, project) triples: `<label> (Python X.Y)`, and where
    two would be equal (with each other or with a name in `taken`), the shortest path that tells
    them apart instead of the bare label."""
    bases = [base_label(label, ver) for label, ver, _ in items]
    counts: dict[str, int] = {}
    for b in [*bases, *taken]:
        counts[b] = counts.get(b, 0) + 1
    out: list[str] = []
    for i, (label, ver, project) in enumerate(items):
        if counts[bases[i]] == 1:
            out.append(bases[i])
            continue
        rivals = [p for j, (_, _, p) in enumerate(items) if j != i and bases[j] == bases[i]]
        depth = len(Path(project).parts)
        k = 2
        while k < depth and any(_tail(project, k) == _tail(r, k) for r in rivals):
            k += 1
        where = _tail(project, k)
        shown = where if Path(project).name == label else f"{label} · {where}"
        out.append(base_label(shown, ver))
    return out
