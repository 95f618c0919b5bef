"""A real OpenSSH server on 127.0.0.1 for the `labshare connect` tests.

Debian's `/usr/sbin/sshd` runs in the foreground with throwaway host and user
keys made by `ssh-keygen` in a temp dir, so the laptop side is a plain `ssh`
with a `~/.ssh/config` host alias, strict host-key checking and a known_hosts
file that holds the throwaway key: exactly what a member has.

Both ends are real Unix accounts (made with conftest's `make_user`), because
`ssh` reads `~/.ssh/config` from the passwd entry, not from `$HOME`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from conftest import BASE, LABSHARE, Member, free_port, wait_for

SSHD = "/usr/sbin/sshd"


def _chown_tree(path: Path, user: str) -> None:
    pw = pwd.getpwnam(user)
    for p in [path, *path.rglob("*")]:
        os.lchown(p, pw.pw_uid, pw.pw_gid)


def adopt_home(member: Member) -> None:
    """Make the account's passwd entry point at the test HOME and unlock it for key logins.

    `make_user` leaves the default /home/NAME (absent) and a locked password
    ("!"), which sshd refuses without PAM; "*" means "no password" but allows keys.
    """
    assert member.user
    subprocess.run(["usermod", "-d", str(member.home), "-p", "*", member.user], check=True)


def install_labshare(member: Member, where: str = ".local/bin") -> Path:
    """Put the test venv's `labshare` where a `uv tool`/`pipx` install would put it."""
    bin_dir = member.home / where
    bin_dir.mkdir(parents=True, exist_ok=True)
    link = bin_dir / "labshare"
    link.symlink_to(LABSHARE)
    _chown_tree(member.home / where.split("/")[0], member.user or "root")
    return link


@dataclass
class Sshd:
    """One sshd process and the keys that let a laptop account log in to a server account."""

    root: Path
    port: int
    host_pub: str
    client_key: Path
    proc: subprocess.Popen | None = None
    log: Path = field(default=Path())
    extra: tuple[str, ...] = ()

    def config_text(self) -> str:
        lines = [
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self.root / 'host_ed25519'}",
            f"PidFile {self.root / 'sshd.pid'}",
            "UsePAM no",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "AuthorizedKeysFile .ssh/authorized_keys",
            "StrictModes yes",
            "PrintMotd no",
            "LogLevel VERBOSE",
            *self.extra,
        ]
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.log = self.root / "sshd.log"
        config = self.root / "sshd_config"
        config.write_text(self.config_text())
        test = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, text=True)
        assert test.returncode == 0, test.stderr
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        wait_for(
            self._listening,
            timeout=15,
            what=f"sshd to listen on {self.port}",
            every=0.05,
            ignoring=(OSError,),
        )

    def _listening(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
        socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        return True

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


def make_sshd(root: Path, extra: tuple[str, ...] = ()) -> Sshd:
    """Host key, client key and an sshd_config under `root` (root-owned, 0700), not yet started."""
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o711)
    keygen = ["ssh-keygen", "-q", "-t", "ed25519", "-N", ""]
    subprocess.run([*keygen, "-f", str(root / "host_ed25519")], check=True)
    subprocess.run([*keygen, "-f", str(root / "client_ed25519")], check=True)
    host_pub = (root / "host_ed25519.pub").read_text().split()[:2]
    return Sshd(
        root=root,
        port=free_port(),
        host_pub=" ".join(host_pub),
        client_key=root / "client_ed25519",
        extra=extra,
    )


def authorize(server: Member, sshd: Sshd) -> None:
    """The server account's ~/.ssh/authorized_keys, owned by it (sshd's StrictModes checks)."""
    ssh_dir = server.home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text((sshd.root / "client_ed25519.pub").read_text())
    os.chmod(ssh_dir / "authorized_keys", 0o600)
    _chown_tree(ssh_dir, server.user or "root")


def write_client_config(
    laptop: Member,
    sshd: Sshd,
    alias: str,
    server_user: str,
    key: Path | None = None,
    extra: tuple[str, ...] = (),
) -> None:
    """The laptop account's ~/.ssh: a key, known_hosts with the host key, and `Host ALIAS`."""
    ssh_dir = laptop.home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    own_key = ssh_dir / f"id_{alias}"
    own_key.write_bytes((key or sshd.client_key).read_bytes())
    os.chmod(own_key, 0o600)
    known = ssh_dir / "known_hosts"
    line = f"[127.0.0.1]:{sshd.port} {sshd.host_pub}\n"
    with open(known, "a") as fh:
        fh.write(line)
    config = ssh_dir / "config"
    block = [
        f"Host {alias}",
        "  HostName 127.0.0.1",
        f"  Port {sshd.port}",
        f"  User {server_user}",
        f"  IdentityFile {own_key}",
        "  IdentitiesOnly yes",
        "  BatchMode yes",
        "  StrictHostKeyChecking yes",
        f"  UserKnownHostsFile {known}",
        "  ConnectTimeout 10",
        *(f"  {e}" for e in extra),
    ]
    with open(config, "a") as fh:
        fh.write("\n".join(block) + "\n\n")
    os.chmod(config, 0o600)
    _chown_tree(ssh_dir, laptop.user or "root")


@dataclass
class Lab:
    """What a connect test needs: the server account, the laptop account and the sshd between them."""

    sshd: Sshd
    server: Member
    laptop: Member


def build(
    make_user, *, extra: tuple[str, ...] = (), with_labshare: bool = True, alias: str = "gpu1"
) -> Iterator[Lab]:
    """Make both accounts, start sshd, yield, then kill sshd by pid (the members are reaped by make_user)."""
    server = make_user()
    laptop = make_user()
    adopt_home(server)
    adopt_home(laptop)
    if with_labshare:
        install_labshare(server)
    sshd = make_sshd(BASE / f"sshd-{uuid.uuid4().hex[:8]}", extra)
    try:
        authorize(server, sshd)
        write_client_config(laptop, sshd, alias, server.name)
        sshd.start()
        yield Lab(sshd=sshd, server=server, laptop=laptop)
    finally:
        sshd.stop()
        shutil.rmtree(sshd.root, ignore_errors=True)
