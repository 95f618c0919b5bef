"""The ssh command lines `connect` runs on a Windows laptop, checked on any system.

Win32-OpenSSH has no ControlMaster and Windows' Python no Unix sockets, so
there the tunnel must be a plain `ssh -N -L` from a TCP port on 127.0.0.1,
with no control socket anywhere in its command lines.  The platform is data
to `ssh.plan`, so the Windows plan is built here from the real `ssh -G`.
"""

from __future__ import annotations

from pathlib import Path

import posix_less
import pytest
from conftest import Member

from labshare.connect import ssh as sshcmd
from labshare.paths import Paths


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths.from_env({"HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state")})


def test_windows_plan_is_plain_ssh_with_a_tcp_forward(paths: Paths) -> None:
    target = sshcmd.Target("alice@gpu1", ("ServerAliveInterval=9",))
    plan = sshcmd.plan(paths, target, system="nt")
    assert not plan.multiplexed
    forward = sshcmd.Forward(
        18888, remote_socket="/home/alice/.local/state/labshare/gpu1/run/jupyter.sock"
    )
    commands = [plan.tunnel(forward), plan.remote(sshcmd.remote_command(["info", "--json"]))]
    for argv in commands:
        assert argv[0] == "ssh" and "alice@gpu1" in argv, argv
        assert not any(
            "ControlMaster" in a or "ControlPath" in a or "ControlPersist" in a for a in argv
        ), argv
        assert "-M" not in argv and "-O" not in argv
    tunnel = commands[0]
    local = tunnel[tunnel.index("-L") + 1]
    assert (
        local == f"127.0.0.1:18888:{forward.remote_socket}"
    )  # a TCP port here, the server's socket there
    assert not (
        paths.state_root / "ssh"
    ).exists()  # no control directory made for a laptop that has none
    line = sshcmd.manual_command(target, forward, system="nt")
    assert line.startswith("ssh -N -L 127.0.0.1:18888:") and "'" not in line


def test_linux_plan_holds_its_own_master(paths: Paths) -> None:
    """The same destination on Linux or macOS: our own master, with its control socket in a 0700 dir."""
    # Whatever this account's own ssh config says about multiplexing, for this test it says nothing.
    plan = sshcmd.plan(
        paths, sshcmd.Target("alice@gpu1", ("ControlMaster=no", "ControlPath=none")), system="posix"
    )
    assert plan.multiplexed and plan.control_path is not None
    assert "-M" in plan.master() and any(a.startswith("ControlPath=") for a in plan.master())
    assert plan.control_path.parent.stat().st_mode & 0o777 == 0o700


def test_server_commands_on_such_a_laptop_say_where_they_run(member: Member) -> None:
    """Where `pwd` and friends cannot be imported (Windows), a server command says so, not "reinstall"."""
    posix_less.refuse_posix_modules(member)
    for args in (["status"], ["doctor"]):
        done = member.run(*args, timeout=60)
        assert done.returncode == 1, done.stderr
        assert (
            "runs on the lab's Linux server" in done.stderr
            and "labshare connect HOST" in done.stderr
        )
        assert "reinstall" not in done.stderr and "Traceback" not in done.stderr
    assert "connect" in member.run("--help", check=True, timeout=60).stdout
