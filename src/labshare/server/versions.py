"""Whether the Jupyter packages whose internals labshare reaches into are versions it was tested with.

Kernel survival, output keeping and the GPU reclaim use private parts of
jupyter_server, jupyter_client, jupyter-server-ydoc (jupyter-collaboration's
server half) and jupyter-server-nbmodel, which change without notice.
`jupyterside.internals` lists each use with the versions it was tested
against, and this module reads the ranges from there, so that table stays
the one list (a test keeps labshare's requirements from allowing a major
version it leaves out).  An installer can still put another version beside
labshare (`pip install -U` in a shared environment, `--no-deps`); `start`
then says so in one line per package, with what to install, and `doctor`
lists them.

It warns and does not refuse: the environment is often the admin's, shared
by every member, so refusing would take every member's Lab away over a
version that may work; what breaks is contained (output keeping switches
itself off with a note, a kernel that cannot be adopted is logged), and
when Jupyter does not start at all, these lines head the error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from importlib import metadata

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from labshare.install_hint import package_command
from labshare.jupyterside.internals import KERNEL_SURVIVAL, OUTPUT_KEEPING, USES


def tested(parts: Iterable[str] = (KERNEL_SURVIVAL, OUTPUT_KEEPING)) -> dict[str, SpecifierSet]:
    """The versions of each package whose internals `parts` use that every one of those uses was tested with."""
    wanted = set(parts)
    found: dict[str, SpecifierSet] = {}
    for use in USES:
        if use.part in wanted:
            name = canonicalize_name(use.package)
            found[name] = found.get(name, SpecifierSet()) & SpecifierSet(use.tested)
    return found


def installed(names: Iterable[str]) -> dict[str, str | None]:
    """The installed version of each package, None where it is not installed."""
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[canonicalize_name(name)] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[canonicalize_name(name)] = None
    return found


def unsupported(
    wanted: Mapping[str, SpecifierSet], versions: Mapping[str, str | None]
) -> list[str]:
    """One line for each installed package outside the versions labshare was tested with, saying what to install."""
    lines = []
    for name, spec in sorted(wanted.items()):
        have = versions.get(name)
        if have is None:
            continue
        try:
            fits = spec.contains(Version(have), prereleases=True)
        except InvalidVersion:
            fits = False
        if not fits:
            lines.append(
                f"{name} {have} is installed, but labshare uses its internals and is tested with "
                f"{name}{spec}; install that in labshare's environment: {package_command(f'{name}{spec}')}."
            )
    return lines


def requirement(name: str) -> str:
    """`name` with the versions labshare was tested with (`jupyter-server-ydoc<4,>=3.0.4`), to say what to install."""
    return f"{name}{tested().get(canonicalize_name(name), '')}"


def check(keep_outputs: bool) -> list[str]:
    """The lines `start` shows for this server: kernel survival always, output keeping when it is on."""
    ranges = tested([KERNEL_SURVIVAL, OUTPUT_KEEPING] if keep_outputs else [KERNEL_SURVIVAL])
    return unsupported(ranges, installed(ranges))
