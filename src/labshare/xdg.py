"""XDG base directories from an environment, with nothing but `os`.

Kept apart from `paths` because `connect` reads its memory before the rest
of labshare is imported (see connect/dial.py), and must find the same place.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


def home(env: Mapping[str, str]) -> str:
    return env.get("HOME") or os.path.expanduser("~")


def base_dir(env: Mapping[str, str], name: str, default: str) -> str:
    """`$name` when it is absolute (the spec ignores relative ones), else `~/default`."""
    value = env.get(name, "")
    return value if os.path.isabs(value) else os.path.join(home(env), default)


def state_home(env: Mapping[str, str]) -> str:
    return base_dir(env, "XDG_STATE_HOME", ".local/state")
