"""Unix accounts as labshare names them: one answer for `ps`, port claims, listeners and `doctor`.

A uid without a passwd entry (a container started with `--user 1234`, an
account deleted while its processes run) is named by its number, the form
`loginctl` and `ps` accept too, so every command names it the same way.
Lookups are cached because NSS may ask LDAP, and `ps` names every server.
"""

from __future__ import annotations

import functools
import pwd
from pathlib import Path

from labshare.paths import LINGER_DIR

SYSTEMD_RUN_DIR = Path(
    "/run/systemd/system"
)  # present only while systemd runs the host (sd_booted's test)


@functools.lru_cache(maxsize=1024)
def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def lingers(user: str, linger_dir: Path = LINGER_DIR) -> bool:
    """Whether systemd keeps `user`'s manager (and so their limits and processes) past logout.

    The file is logind's own record, what `loginctl show-user NAME -p Linger`
    reports, read without asking logind over D-Bus.
    """
    return (linger_dir / user).exists()


def has_logind(linger_dir: Path = LINGER_DIR, systemd_dir: Path = SYSTEMD_RUN_DIR) -> bool:
    """Whether lingering means anything here: systemd runs this host, or logind has kept a linger list."""
    return systemd_dir.is_dir() or linger_dir.is_dir()


def enable_linger(user: str) -> str:
    """The command that makes `user` linger: root's to run, since a member may not without polkit."""
    return f"sudo loginctl enable-linger {user}"
