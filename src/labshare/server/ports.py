"""TCP ports for members in TCP mode: the admin's assignments, then claims from the range.

A claim is a file named after the port in a sticky, world-writable directory
(labshare.claims, shared with GPU leases): no two users ever get the same
port however many start at once, and nobody can delete another's claim.
Its owner is what the filesystem says; its content (`records.port_claim`)
only tells the admin reading the directory whose it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from labshare.claims import ClaimsDir
from labshare.config import Site
from labshare.errors import LabshareError
from labshare.listeners import port_is_free
from labshare.records.port_claim import PortClaim


@dataclass(frozen=True)
class Claim:
    port: int
    user: str
    uid: int


def _claims(site: Site) -> ClaimsDir:
    return ClaimsDir(site.claims_dir, what="port claims directory")


def claims(site: Site) -> list[Claim]:
    """Every recorded claim, with its owner as the filesystem says (not as the file says)."""
    found = [
        Claim(port=int(e.name), user=e.user, uid=e.uid)
        for e in _claims(site).entries()
        if e.name.isdigit()
    ]
    return sorted(found, key=lambda c: c.port)


def port_for(site: Site, user: str, uid: int) -> int | None:
    """This member's port: assigned, else already claimed, else a new claim; None without a range."""
    if user in site.port_assignments:
        return site.port_assignments[user]
    if site.port_range is None:
        return None
    directory = _claims(site).checked()
    mine = [c.port for c in claims(site) if c.uid == uid]
    if mine:
        return min(mine)
    assigned = set(site.port_assignments.values())
    low, high = site.port_range
    for port in range(low, high + 1):
        if port in assigned:
            continue
        if not directory.create(
            str(port), json.dumps(PortClaim(port=port, user=user).to_json()) + "\n"
        ):
            continue
        if port_is_free(port):
            return port
        directory.remove(str(port))
    raise LabshareError(
        f"No free port is left in the range {low}-{high}; ask an admin to widen [ports] range "
        f"in {site.path} or to free unused claims in {directory.path}."
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
