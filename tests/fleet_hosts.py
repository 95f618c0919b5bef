"""Simulated lab servers on one machine, for `labshare fleet` and `connect GROUP`.

Each server is a real sshd on its own loopback address (127.0.0.2, ...)
inside its own UTS, mount and pid namespaces (`unshare`), so it has its own
hostname (and so its own state folder in the shared home, as on NFS), its
own processes, and — by a bind mount over one common path, `Fleet.here` —
its own site config, leases directory and stand-in NVML data file.  Its
/proc/loadavg is its own file too (`LOAD`, the same on each), so which
server is least loaded is the test's choice, not the moment's load of the
machine running the suite, read a little apart for each server.  sshd's
`SetEnv` points every session at that path (and at the NVML stub), so the
real `labshare` of the test venv, found in the member's ~/.local/bin, reads
that server's files and nothing else.  The laptop is a third account with a
plain `~/.ssh/config` of aliases.  A server killed by PID takes its whole
namespace with it (`--kill-child` on the namespace's first process).

Also here: an address that refuses (nothing listens there) and one that
hangs (a Python listener that accepts and never answers, killed by PID).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import sshd as sshd_helper
from conftest import BASE, Accounts, Member, free_port, wait_for
from fake_gpus import FakeNvml, cards

OLD_LABSHARE = """#!/bin/sh
# labshare as it was before `fleet`: click's usage error for an unknown command.
case "$1" in
  -V|--version) echo "labshare, version 0.0.9"; exit 0 ;;
esac
echo "Usage: labshare [OPTIONS] COMMAND [ARGS]..." >&2
echo "Try 'labshare -h' for help." >&2
echo "" >&2
echo "Error: No such command '$1'." >&2
exit 2
"""


@dataclass
class SimServer:
    """One simulated server: its alias (= hostname), address, sshd and its own files."""

    name: str
    address: str
    root: Path
    sshd: sshd_helper.Sshd
    nvml: FakeNvml
    proc: subprocess.Popen | None = None

    @property
    def own(self) -> Path:
        """What the server sees at `Fleet.here`: site.toml, gpus/ (the leases), nvml.txt, bin/."""
        return self.root / "here"

    @property
    def leases(self) -> Path:
        return self.own / "gpus"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


@dataclass
class Fleet:
    """The servers, the two addresses that do not answer, and the accounts."""

    here: Path
    laptop: Member
    member: Member
    bob: Member
    servers: dict[str, SimServer] = field(default_factory=dict)
    refusing: str = ""  # alias of an address where nothing listens
    hanging: str = ""  # alias of a listener that never answers
    hang_proc: subprocess.Popen | None = None

    def ssh(self, alias: str, *command: str, user: Member | None = None, timeout: float = 120):
        """`ssh [bob@]ALIAS command` as the laptop account, as a member types it."""
        who = user or self.member
        dest = f"{who.name}@{alias}"
        return self.laptop.run_cmd(["ssh", dest, *command], timeout=timeout)


SITE = """\
[lab]
servers = {servers}

[gpus]
assign = "per-kernel"
leases_dir = "{here}/gpus"
idle_reclaim_after = "2h"
"""
LOAD = "0.50 0.40 0.30 1/200 4242\n"


def _namespaced_start(server: SimServer, here: Path) -> None:
    """sshd as the first process of new UTS, mount and pid namespaces, with the server's files at `here`."""
    config = server.sshd.root / "sshd_config"
    config.write_text(
        server.sshd.config_text().replace(
            "ListenAddress 127.0.0.1", f"ListenAddress {server.address}"
        )
    )
    test = subprocess.run(
        [sshd_helper.SSHD, "-t", "-f", str(config)], capture_output=True, text=True
    )
    assert test.returncode == 0, test.stderr
    script = (
        f"hostname {server.name} && mount --bind {server.own} {here} && "
        f"mount --bind {server.root / 'loadavg'} /proc/loadavg && "
        f"exec {sshd_helper.SSHD} -D -e -f {config}"
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    log = open(server.sshd.root / "sshd.log", "ab")
    server.proc = subprocess.Popen(
        [
            "unshare",
            "--uts",
            "--mount",
            "--propagation",
            "private",
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child",
            "sh",
            "-c",
            script,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log.close()

    def listening() -> bool:
        assert server.proc is not None and server.proc.poll() is None, (
            server.sshd.root / "sshd.log"
        ).read_text()
        socket.create_connection((server.address, server.sshd.port), timeout=1).close()
        return True

    wait_for(listening, timeout=15, what=f"sshd of {server.name}", every=0.05, ignoring=(OSError,))


def _client_config(
    laptop: Member, fleet: Fleet, key: Path, extra: dict[str, tuple[str, int]]
) -> None:
    """The laptop's ~/.ssh: one key, known_hosts with each server's key, and an alias per host."""
    ssh_dir = laptop.home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    own_key = ssh_dir / "id_fleet"
    own_key.write_bytes(key.read_bytes())
    own_key.chmod(0o600)
    known = ssh_dir / "known_hosts"
    hosts = {name: (s.address, s.sshd.port) for name, s in fleet.servers.items()} | extra
    known.write_text(
        "".join(f"[{s.address}]:{s.sshd.port} {s.sshd.host_pub}\n" for s in fleet.servers.values())
    )
    blocks = []
    for alias, (address, port) in hosts.items():
        # A member's own ConnectTimeout wins over fleet's 1 s handshake limit: the simulated servers get a
        # generous one, as a loaded suite can keep sshd's banner back for seconds; gpue and gpuf keep 1 s.
        limit = "  ConnectTimeout 30\n" if alias in fleet.servers else ""
        blocks.append(
            textwrap.dedent(
                f"""\
                Host {alias}
                  HostName {address}
                  Port {port}
                  User {fleet.member.name}
                  IdentityFile {own_key}
                  IdentitiesOnly yes
                  BatchMode yes
                  StrictHostKeyChecking yes
                  UserKnownHostsFile {known}
                """
            )
            + limit
        )
    (ssh_dir / "config").write_text("\n".join(blocks))
    (ssh_dir / "config").chmod(0o600)
    sshd_helper._chown_tree(ssh_dir, laptop.user or "root")


def _hang(address: str, port: int) -> subprocess.Popen:
    """A listener that accepts every connection and never says a word."""
    code = textwrap.dedent(
        f"""
        import socket, sys
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(({address!r}, {port}))
        s.listen(64)
        print("listening", flush=True)
        held = []
        while True:
            held.append(s.accept())
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "listening"
    return proc


def boot(
    users: Accounts,
    stub_dir: Path,
    names: tuple[str, ...] = ("gpua", "gpub", "gpuc", "gpud"),
    gpus: dict[str, int] | None = None,
    old: tuple[str, ...] = ("gpud",),
) -> Iterator[Fleet]:
    """Boot every server once; yield; kill them (and the listener) by PID, remove their files."""
    base = BASE / f"fleet-{uuid.uuid4().hex[:8]}"
    base.mkdir(parents=True, mode=0o755)
    base.chmod(0o755)
    here = base / "here"
    here.mkdir(mode=0o755)
    laptop, member, bob = users(), users(), users()
    for account in (member, bob):
        sshd_helper.adopt_home(account)
        sshd_helper.install_labshare(account)
    sshd_helper.adopt_home(laptop)
    fleet = Fleet(here=here, laptop=laptop, member=member, bob=bob)
    counts = gpus or {}
    all_names = [*names, "gpue", "gpuf"]
    try:
        for i, name in enumerate(names):
            sshd = sshd_helper.make_sshd(
                base / name / "sshd",
                extra=(
                    f"SetEnv LABSHARE_SITE_CONFIG={here}/site.toml LABSHARE_FAKE_NVML={here}/nvml.txt "
                    f"LD_LIBRARY_PATH={stub_dir} PATH={here}/bin:/usr/local/bin:/usr/bin:/bin",
                ),
            )
            own = base / name / "here"
            (own / "gpus").mkdir(parents=True)
            (own / "gpus").chmod(0o1777)
            (own / "bin").mkdir()
            own.chmod(0o755)
            (own / "site.toml").write_text(
                SITE.format(servers=all_names, here=here).replace("'", '"')
            )
            (own / "site.toml").chmod(0o644)
            (base / name / "loadavg").write_text(LOAD)
            if name in old:
                (own / "bin" / "labshare").write_text(OLD_LABSHARE)
                (own / "bin" / "labshare").chmod(0o755)
            nvml = FakeNvml(
                lib_dir=stub_dir, path=own / "nvml.txt", cards=cards(counts.get(name, 2))
            )
            for card in nvml.cards:  # each server's cards are its own
                card.uuid = card.uuid.replace("GPU-0", f"GPU-{i + 1}", 1)
            nvml.write()
            server = SimServer(
                name=name, address=f"127.0.0.{i + 2}", root=base / name, sshd=sshd, nvml=nvml
            )
            fleet.servers[name] = server
            _namespaced_start(server, here)
        first = next(iter(fleet.servers.values())).sshd
        for account in (member, bob):  # every sshd reads the same ~/.ssh/authorized_keys
            sshd_helper.authorize(account, first)
        fleet.refusing, fleet.hanging = "gpue", "gpuf"
        hang_port = free_port()
        fleet.hang_proc = _hang("127.0.0.21", hang_port)
        _client_config(
            laptop,
            fleet,
            first.client_key,
            {"gpue": ("127.0.0.20", free_port()), "gpuf": ("127.0.0.21", hang_port)},
        )
        yield fleet
    finally:
        for server in fleet.servers.values():
            server.stop()
        if fleet.hang_proc is not None:
            fleet.hang_proc.kill()
            fleet.hang_proc.wait(10)
        shutil.rmtree(base, ignore_errors=True)
