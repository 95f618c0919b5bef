"""What is installed: labshare, Jupyter's parts (against the versions labshare's use of their
internals was tested with), and the releases with a known security hole.

The advisory table lives here alone, so adding the next CVE is one line in
one place: (distribution, fixed in, fixed within an older major in, what it
lets an attacker do).  A member's server is reachable by every account on
the host that can reach its socket or port, so these matter on shared hosts.
"""

from __future__ import annotations

import sys

from labshare import __version__
from labshare.doctor import FAIL, OK, WARN, Check
from labshare.errors import LabshareError
from labshare.install_hint import package_command, upgrade_command

# (distribution, vulnerable below, unless at least this within the same major, advisory)
VULNERABLE: tuple[tuple[str, str, str | None, str], ...] = (
    (
        "jupyter-server-proxy",
        "4.1.1",
        "3.2.3",
        "CVE-2024-28179: its websocket proxy skips authentication",
    ),
    (
        "jupyterlab",
        "4.2.5",
        "3.6.8",
        "CVE-2024-43805: HTML injection in the Markdown preview and notebooks",
    ),
    (
        "jupyter-lsp",
        "2.2.2",
        None,
        "CVE-2024-22415: unauthenticated file access through the LSP endpoint",
    ),
    ("jupyter-server", "2.14.1", None, "CVE-2024-35178: leaks the NTLM hash on Windows"),
)
JUPYTER_DISTS = ("jupyterlab", "jupyter-server", "jupyter-client", "ipykernel")


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _older(found: str, bound: str) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(found) < Version(bound)
    except InvalidVersion:
        return False


def _is_vulnerable(found: str, fixed: str, backport: str | None) -> bool:
    if not _older(found, fixed):
        return False
    if backport and found.split(".")[0] == backport.split(".")[0]:
        return _older(found, backport)
    return True


def _jupyter() -> Check:
    found = {d: _version(d) for d in JUPYTER_DISTS}
    missing = [d for d, v in found.items() if v is None]
    listed = ", ".join(f"{d} {v}" for d, v in found.items() if v)
    try:
        from labshare.server.launch import find_jupyter_lab

        lab = find_jupyter_lab()
    except LabshareError as exc:
        return Check("jupyter", FAIL, exc.message, upgrade_command())
    if missing:
        return Check(
            "jupyter", FAIL, f"missing: {', '.join(missing)} (found {listed})", upgrade_command()
        )
    return Check("jupyter", OK, f"{listed}; runs {' '.join(lab)}")


def _internals() -> Check:
    """The packages whose private parts labshare uses, against the versions those uses were tested with."""
    from labshare.server.versions import installed, tested, unsupported

    ranges = tested()
    have = installed(ranges)
    outside = unsupported(ranges, have)
    if outside:
        return Check("jupyter-internals", WARN, " ".join(outside))
    listed = ", ".join(
        f"{name} {have[name] or 'not installed'} (tested "
        f"{','.join(sorted(set(map(str, spec)), key=lambda bound: bound.startswith('<')))})"
        for name, spec in sorted(ranges.items())
    )
    return Check("jupyter-internals", OK, listed)


def _advisories() -> Check:
    holes = []
    for dist, fixed, backport, advisory in VULNERABLE:
        have = _version(dist)
        if have and _is_vulnerable(have, fixed, backport):
            holes.append((dist, have, fixed, advisory))
    if not holes:
        return Check(
            "vulnerable-packages",
            OK,
            "no installed package has a known advisory labshare checks for",
        )
    detail = "; ".join(f"{d} {have} is vulnerable ({adv})" for d, have, _, adv in holes)
    fix = package_command("--upgrade", *(f"{d}>={fixed}" for d, _, fixed, _ in holes))
    return Check("vulnerable-packages", FAIL, detail, fix)


def versions() -> list[Check]:
    """labshare, Jupyter's parts and whether they are the versions tested, and any release with a known hole."""
    here = Check(
        "labshare",
        OK,
        f"labshare {__version__} on Python {sys.version.split()[0]} ({sys.executable})",
    )
    return [here, _jupyter(), _internals(), _advisories()]
