"""The value types of labshare's config files, checked one way everywhere.

Durations, memory sizes, tables and unknown keys are read the same in the
site config, a member's config and the hub export, so one file's "12h" or
"64G" never means something else in another.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from labshare.errors import LabshareError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d)?\s*$")
MEMORY_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([KMGT]?)$")
_MEMORY_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_UNITS = {None: 1, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


class ConfigError(LabshareError):
    """A config file says something labshare cannot use; the message names the file and the key."""


def fail(path: Path, key: str, problem: str) -> ConfigError:
    return ConfigError(f"{path}: {key}: {problem}.")


def duration(path: Path, key: str, value: object) -> float | None:
    """Seconds from 3600, "90s", "30m", "12h" or "2d"; 0 means off."""
    if isinstance(value, bool):
        raise fail(path, key, "expected a duration such as 3600 or \"12h\", got a boolean")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise fail(path, key, f"expected a duration such as 3600 or \"12h\", got {value!r}")
    if seconds < 0:
        raise fail(path, key, "a duration cannot be negative")
    return seconds or None


def size_bytes(size: str) -> int:
    """Bytes in a memory size as the site config spells it: "64G", "1.5T", or a bare number of bytes."""
    m = MEMORY_SIZE.match(size)
    if not m:
        raise ValueError(f"not a size: {size!r}")
    return int(float(m.group(1)) * _MEMORY_UNITS[m.group(2)])


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except PermissionError:
        raise ConfigError(f"{path}: cannot be read (permission denied); it must be readable by all members.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: is not valid TOML ({exc}); fix the file.") from None


def table(path: Path, data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise fail(path, key, "must be a table")
    return value


def unknown(path: Path, where: str, table: Mapping[str, Any], allowed: set[str]) -> None:
    for key in table:
        if key not in allowed:
            raise fail(path, f"{where}.{key}" if where else key, f"unknown key (known: {', '.join(sorted(allowed))})")
