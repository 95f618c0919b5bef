"""Where labshare keeps things, resolved once in `cli` and passed down.

Per-user, per-host state lives under `$XDG_STATE_HOME/labshare/<hostname>/`
because homes are often NFS-shared between servers: two hosts must never
read each other's pid or socket.  Nothing here touches the disk.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from labshare import xdg

# sun_path is 108 bytes on Linux, one of them the terminating NUL.
MAX_SOCKET_PATH = 107
LINGER_DIR = Path("/var/lib/systemd/linger")


@dataclass(frozen=True)
class Paths:
    home: Path
    state_home: Path
    config_home: Path
    data_home: Path
    hostname: str
    uid: int
    site_config: Path = Path("/etc/labshare/config.toml")
    tmp_root: Path = Path("/tmp")
    # The host's own files `doctor` reads; overridable so an admin (or a test) can point at a copy.
    sshd_config: Path = Path("/etc/ssh/sshd_config")
    logind_config: Path = Path("/etc/systemd/logind.conf")
    linger_dir: Path = LINGER_DIR

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Paths:
        env = os.environ if environ is None else environ
        return cls(
            home=Path(xdg.home(env)),
            state_home=Path(xdg.state_home(env)),
            config_home=Path(xdg.base_dir(env, "XDG_CONFIG_HOME", ".config")),
            data_home=Path(xdg.base_dir(env, "XDG_DATA_HOME", ".local/share")),
            hostname=socket.gethostname(),
            uid=os.getuid() if hasattr(os, "getuid") else 0,
            site_config=Path(env.get("LABSHARE_SITE_CONFIG") or "/etc/labshare/config.toml"),
            sshd_config=Path(env.get("LABSHARE_SSHD_CONFIG") or cls.sshd_config),
            logind_config=Path(env.get("LABSHARE_LOGIND_CONFIG") or cls.logind_config),
            linger_dir=Path(env.get("LABSHARE_LINGER_DIR") or cls.linger_dir),
        )

    @property
    def state_root(self) -> Path:
        return self.state_home / "labshare"

    @property
    def state_dir(self) -> Path:
        return self.state_root / self.hostname

    @property
    def state_file(self) -> Path:
        return self.state_dir / "server.json"

    @property
    def launch_file(self) -> Path:
        return self.state_dir / "launch.json"

    @property
    def hub_server_file(self) -> Path:
        return self.state_dir / "hub_server.json"

    @property
    def hub_launch_file(self) -> Path:
        return self.state_dir / "hub_launch.json"

    @property
    def lock_file(self) -> Path:
        return self.state_dir / "server.lock"

    @property
    def token_file(self) -> Path:
        return self.state_dir / "token"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "server.log"

    @property
    def runtime_dir(self) -> Path:
        """Jupyter's runtime dir (server info, kernel connection files), kept private and per host."""
        return self.state_dir / "runtime"

    @property
    def kernel_records_dir(self) -> Path:
        return self.state_dir / "kernels"

    @property
    def keep_kernels_marker(self) -> Path:
        return self.state_dir / "keep-kernels"

    @property
    def sessions_db(self) -> Path:
        return self.state_dir / "sessions.db"

    @property
    def preferred_socket(self) -> Path:
        return self.state_dir / "run" / "jupyter.sock"

    @property
    def fallback_socket(self) -> Path:
        return self.tmp_root / f"labshare-{self.uid}" / f"{self.hostname}.sock"

    @property
    def socket(self) -> Path:
        """The server's socket: under the state dir, or a private /tmp dir when that path is too long."""
        if socket_path_fits(self.preferred_socket):
            return self.preferred_socket
        return self.fallback_socket

    @property
    def socket_is_fallback(self) -> bool:
        return self.socket != self.preferred_socket

    @property
    def user_config_file(self) -> Path:
        return self.config_home / "labshare" / "config.toml"


def socket_path_fits(path: Path) -> bool:
    return len(os.fsencode(path)) <= MAX_SOCKET_PATH
