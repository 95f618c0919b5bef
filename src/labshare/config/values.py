"""The value types of labshare's config files, checked one way everywhere.

Durations, memory sizes and tables are read the same in the
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


def seconds(value: object) -> float | None:
    """Seconds from 3600, "90s", "30m", "12h" or "2d"; 0 means off (None); a ValueError for anything else."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        found = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        found = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError(value)
    if found < 0:
        raise ValueError(value)
    return found or None


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
    except (
        OSError
    ) as exc:  # the site config must be readable by every member; a member's own, by them
        raise ConfigError(
            f"{path}: cannot be read ({exc.strerror or exc}); fix its permissions."
        ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: is not valid TOML ({exc}); fix the file.") from None


def table(path: Path, data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise fail(path, key, "must be a table")
    return value
