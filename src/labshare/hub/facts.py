"""What labshare knows about this host's members: who they are, their policy, and what runs now.

The only impure part of the export: it reads the password and group
databases, members' own configs and their state files (root may read them
all), and the cards' UUIDs from NVML, and hands plain data to the pure functions.
"""

from __future__ import annotations

import grp
import json
import pwd
import shutil
import socket
import sys
from pathlib import Path

from labshare import config
from labshare.config import Site
from labshare.errors import LabshareError
from labshare.hub.jupyterhub import HubInputs, MemberFacts
from labshare.records import RecordError
from labshare.records.server import ServerState
from labshare.server import state


def state_file(home: str, hostname: str) -> Path:
    return Path(home) / ".local/state/labshare" / hostname / "server.json"


def members_with_state(hostname: str) -> dict[str, Path]:
    """Accounts whose home holds a labshare state record for this host."""
    found: dict[str, Path] = {}
    for entry in pwd.getpwall():
        if not entry.pw_dir or entry.pw_dir == "/":
            continue
        path = state_file(entry.pw_dir, hostname)
        try:
            if path.is_file():
                found.setdefault(entry.pw_name, path)
        except OSError:
            continue
    return found


def group_members(name: str) -> set[str]:
    try:
        group = grp.getgrnam(name)
    except KeyError:
        return set()
    users = set(group.gr_mem)
    users |= {p.pw_name for p in pwd.getpwall() if p.pw_gid == group.gr_gid}
    return users


def _record(path: Path | None) -> ServerState | None:
    """A member's server record, read as root and left as it is: one that cannot be read counts as none."""
    if path is None:
        return None
    try:
        return ServerState.from_json(json.loads(path.read_text()), f"the state file {path}")
    except (OSError, ValueError, RecordError):
        return None


def _own(site: Site, home: str) -> dict:
    """The member's own overrides; one that cannot be read or is invalid counts as none here."""
    try:
        return config.load_user(Path(home) / ".config/labshare/config.toml", site)
    except LabshareError:
        return {}


def gather(site_path: Path, hostname: str | None = None) -> HubInputs:
    """Load the site config and collect every member's facts; refuse names with no account."""
    site = config.load_site(site_path)
    if site.path is None:
        raise LabshareError(
            f"There is no site config at {site_path}, and the hub's config is made from it: write "
            "one (the manual's site policy page lists every key; `labshare admin check` checks it) "
            "or point LABSHARE_SITE_CONFIG at it, then run hub-config again."
        )
    host = hostname or socket.gethostname()
    named = set(config.members(site))
    missing = []
    for name in sorted(named):
        try:
            pwd.getpwnam(name)
        except KeyError:
            missing.append(name)
    if missing:
        who = ", ".join(missing)
        raise LabshareError(
            f"{who} {'is' if len(missing) == 1 else 'are'} named in {site_path} "
            f"but {'has' if len(missing) == 1 else 'have'} "
            f"no Unix account on this host; create the account (useradd) or remove the name, then run again."
        )
    stateful = members_with_state(host)
    in_groups: set[str] = set()
    for group in site.groups:
        in_groups |= group_members(group)
    facts = []
    for name in sorted(named | set(stateful) | in_groups):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:  # an account deleted since it was listed: no longer a member
            continue
        policy = config.policy_for(site, name, config.groups_of(name), _own(site, entry.pw_dir))
        record = _record(stateful.get(name))
        running = record is not None and state.alive(
            record.supervisor_pid, record.supervisor_started
        )
        facts.append(
            MemberFacts(
                name=name,
                limits=policy.limits,
                root_dir=policy.root_dir,
                admin=name in site.admins,
                has_state=name in stateful,
                running=running,
                mode=record.mode if record and running else None,
                port=record.port if record and running else None,
                pid=record.pid if record and running else None,
            )
        )
    return HubInputs(
        site=site,
        members=tuple(facts),
        group_names=tuple(sorted(site.groups)),
        labshare=site.hub.labshare or own_command(),
    )


def own_command() -> str:
    """This labshare's own command, as the spawner must name it: beside its Python, else on PATH."""
    beside = Path(sys.executable).parent / "labshare"
    if beside.is_file():
        return str(beside)
    return shutil.which("labshare") or "labshare"
