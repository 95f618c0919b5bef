"""Whether the Jupyter packages whose internals labshare reaches into are versions it was tested with.

`survive` and `outputs_keeper` use private parts of jupyter_server,
jupyter_client, jupyter-server-ydoc (jupyter-collaboration's server half)
and jupyter-server-nbmodel, which change without notice.  labshare's
requirements give each of them an upper bound, and this module reads those
bounds back from labshare's installed metadata, so pyproject.toml stays the
one list.  An installer can still put another version beside labshare
(`pip install -U` in a shared environment, `--no-deps`); `start` then says
so in one line per package, with what to install.

It warns and does not refuse: the environment is often the admin's, shared
by every member, so refusing would take every member's Lab away over a
version that may work; what breaks is contained (output keeping switches
itself off with a note, a kernel that cannot be adopted is logged), and
when Jupyter does not start at all, these lines head the error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from importlib import metadata

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from labshare.install_hint import package_command

KERNEL_SURVIVAL = ("jupyter-server", "jupyter-client")
OUTPUT_KEEPING = ("jupyter-collaboration", "jupyter-server-ydoc", "jupyter-server-nbmodel")


def bounds(requirements: Iterable[str], names: Iterable[str]) -> dict[str, SpecifierSet]:
    """labshare's own version bounds for `names`, from its requirement strings (extras left out)."""
    wanted = {canonicalize_name(n) for n in names}
    found: dict[str, SpecifierSet] = {}
    for line in requirements:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        name = canonicalize_name(req.name)
        if name in wanted and (req.marker is None or req.marker.evaluate({"extra": ""})):
            found[name] = req.specifier
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


def unsupported(wanted: Mapping[str, SpecifierSet], versions: Mapping[str, str | None]) -> list[str]:
    """One line for each installed package outside labshare's bounds, saying what to install."""
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


def labshare_bounds(names: Iterable[str]) -> dict[str, SpecifierSet]:
    """The bounds of the labshare that is installed; none when it runs from a source tree."""
    try:
        return bounds(metadata.requires("labshare") or [], names)
    except metadata.PackageNotFoundError:
        return {}


def requirement(name: str) -> str:
    """`name` with labshare's bounds (`jupyter-collaboration<6,>=5.0`), for a note saying what to install."""
    return f"{name}{labshare_bounds([name]).get(canonicalize_name(name), '')}"


def check(keep_outputs: bool) -> list[str]:
    """The lines `start` shows for this server: kernel survival always, output keeping when it is on."""
    names = KERNEL_SURVIVAL + (OUTPUT_KEEPING if keep_outputs else ())
    return unsupported(labshare_bounds(names), installed(names))
