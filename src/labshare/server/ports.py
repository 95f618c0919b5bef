"""TCP ports for members in TCP mode: the admin's assignments, then claims from the range.

A claim is a file named after the port in a sticky, world-writable directory
(like /tmp): creating it with O_EXCL is atomic, so no two users ever get the
same port however many start at once, and the sticky bit means only its
owner can remove it, so nobody can delete or take over another's claim.
No daemon, no shared lock, and it works on a plain local disk.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from labshare.config import Site
from labshare.errors import LabshareError
from labshare.listeners import port_is_free, user_name


@dataclass(frozen=True)
class Claim:
    port: int
    user: str
    uid: int


def _claims_dir(site: Site) -> Path:
    directory = site.claims_dir
    try:
        st = os.lstat(directory)
    except FileNotFoundError:
        raise LabshareError(
            f"The port claims directory {directory} does not exist; an admin must create it once with "
            f"`sudo install -d -m 1777 {directory}`."
        ) from None
    sticky_shared = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX and st.st_uid == 0
    if not sticky_shared:
        raise LabshareError(
            f"The port claims directory {directory} must be owned by root with mode 1777 (sticky) so "
            f"nobody can remove another's claim; fix it with `sudo chown root {directory} && sudo chmod 1777 {directory}`."
        )
    return directory


def claims(site: Site) -> list[Claim]:
    """Every recorded claim, with its owner as the filesystem says (not as the file says)."""
    found = []
    try:
        entries = list(os.scandir(site.claims_dir))
    except OSError:
        return []
    for entry in entries:
        if entry.name.isdigit():
            try:
                uid = entry.stat(follow_symlinks=False).st_uid
            except OSError:
                continue
            found.append(Claim(port=int(entry.name), user=user_name(uid), uid=uid))
    return sorted(found, key=lambda c: c.port)


def port_for(site: Site, user: str, uid: int) -> int | None:
    """This member's port: assigned, else already claimed, else a new claim; None without a range."""
    if user in site.port_assignments:
        return site.port_assignments[user]
    if site.port_range is None:
        return None
    directory = _claims_dir(site)
    mine = [c.port for c in claims(site) if c.uid == uid]
    if mine:
        return min(mine)
    assigned = set(site.port_assignments.values())
    low, high = site.port_range
    for port in range(low, high + 1):
        if port in assigned:
            continue
        path = directory / str(port)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{user}\n")
        if port_is_free(port):
            return port
        os.unlink(path)
    raise LabshareError(
        f"No free port is left in the range {low}-{high}; ask an admin to widen [ports] range "
        f"in {site.path} or to free unused claims in {directory}."
    )


def owner_of(site: Site, port: int) -> str | None:
    """Whom the site config or a claim gives `port` to, if anyone."""
    for user, assigned in site.port_assignments.items():
        if assigned == port:
            return user
    for claim in claims(site):
        if claim.port == port:
            return claim.user
    return None
