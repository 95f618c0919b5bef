"""`labshare admin notices install`: the spool, the channels file and the systemd unit, each made only if missing.

Idempotent: run again it changes nothing that is right, and it never
overwrites the channels file, which the admin edits.  It needs systemd as
PID 1 (not so in most containers, where `labshare admin notices serve`
runs under whatever starts services there).
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from labshare import proc
from labshare.errors import LabshareError
from labshare.notify import spool

UNIT = "labshare-notices.service"
UNIT_DIR = Path("/etc/systemd/system")
CHANNELS_TEMPLATE = """\
# The lab's notice channels: apprise URLs, secrets, read by root's labshare-notices service only.
# Keep this file root's with mode 0600.  Examples (see the admin manual's notices page):
#   "slack://TokenA/TokenB/TokenC/#lab-gpus"
#   "mailtos://USER:PASSWORD@smtp.lab.example?to={address}"
#   "line://CHANNEL_ACCESS_TOKEN/{address}"
urls = []
"""


@dataclass
class Installed:
    spool_dir: str
    channels_file: str | None
    unit: str | None
    made: list[str] = field(default_factory=list)


def systemd_runs() -> bool:
    """Whether systemd is PID 1 here (sd_booted's test): not so in most containers."""
    return Path("/run/systemd/system").is_dir()


def labshare_command() -> str:
    found = shutil.which("labshare")
    return found or str(Path(sys.executable).parent / "labshare")


def unit_text(command: str, site_config: Path) -> str:
    env = (
        f"Environment=LABSHARE_SITE_CONFIG={site_config}\n"
        if str(site_config) != "/etc/labshare/config.toml"
        else ""
    )
    return (
        "[Unit]\n"
        "Description=labshare notices: members' notices to the lab's channels\n"
        "After=network-online.target\nWants=network-online.target\n\n"
        "[Service]\n"
        f"ExecStart={command} admin notices serve\n"
        f"{env}"
        "Restart=always\nRestartSec=5\nUMask=0077\n\n"
        "[Install]\nWantedBy=multi-user.target\n"
    )


def ensure_spool(path: Path, made: list[str]) -> None:
    if not path.exists():
        path.mkdir(parents=True, mode=0o755)
        made.append(str(path))
    os.chown(path, 0, 0)
    os.chmod(path, spool.MODE)


def ensure_channels_file(path: Path, made: list[str]) -> None:
    if path.exists():
        os.chown(path, 0, 0)
        os.chmod(path, 0o600)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(CHANNELS_TEMPLATE)
    made.append(str(path))


def install(site_config: Path, *, with_unit: bool = True) -> Installed:
    from labshare import config

    if os.geteuid() != 0:
        raise LabshareError(
            "Setting up the notices service needs root: run `sudo labshare admin notices install`."
        )
    site = config.load_site(site_config).notify
    made: list[str] = []
    ensure_spool(Path(site.spool_dir), made)
    if site.channels_file:
        ensure_channels_file(Path(site.channels_file), made)
    unit = None
    if with_unit and not site.channels_file:
        raise LabshareError(
            f"The site config ({site_config}) names no [notify] channels_file, so the service would have "
            "nothing to send to; set it (see the admin's notices page), then run this again."
        )
    if with_unit:
        if not systemd_runs():
            raise LabshareError(
                "systemd is not running this host (PID 1 is something else, as in most containers); "
                "run `labshare admin notices serve` as root under whatever starts services here."
            )
        unit_path = UNIT_DIR / UNIT
        text = unit_text(labshare_command(), site_config)
        if not unit_path.exists() or unit_path.read_text() != text:
            unit_path.write_text(text)
            made.append(str(unit_path))
        proc.run(["systemctl", "daemon-reload"], what="reloading systemd")
        proc.run(["systemctl", "enable", "--now", UNIT], what=f"starting {UNIT}")
        unit = str(unit_path)
    return Installed(str(site.spool_dir), site.channels_file, unit, made)


def service_running() -> bool | None:
    """Whether the unit is active; None where systemd does not run the host."""
    if not systemd_runs():
        return None
    try:
        proc.run(["systemctl", "is-active", "--quiet", UNIT], what="asking systemd")
    except LabshareError:  # inactive, failed or unknown: not running
        return False
    return True
