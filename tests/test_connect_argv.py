"""The ssh command lines `connect` runs, as plain data: no ssh is started, no config read.

tests/test_connect_windows.py builds the same plans from the real `ssh -G`, and
the sshd tests run them against a real server; here each command line is
checked on its own, so a changed option shows in seconds, as any user.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from labshare.connect import dial
from labshare.connect import ssh as sshcmd

pytestmark = pytest.mark.quick  # pure: scripts/test runs it first, as an ordinary user

TARGET = sshcmd.Target("alice@gpu1", ("ServerAliveInterval=9",))
SOCKET = "/home/alice/.local/state/labshare/gpu1/run/jupyter.sock"
KEEPALIVE = ["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]


def test_a_forward_goes_from_a_loopback_port_to_the_servers_socket_or_its_loopback_port() -> None:
    assert sshcmd.Forward(18888, remote_socket=SOCKET).spec() == f"127.0.0.1:18888:{SOCKET}"
    assert sshcmd.Forward(18888, remote_port=8888).spec() == "127.0.0.1:18888:127.0.0.1:8888"


def test_our_own_master_holds_the_forward_and_ends_with_us() -> None:
    plan = sshcmd.Plan(TARGET, control_path=Path("/state/ssh/c-42"))
    assert plan.master(sshcmd.Forward(18888, remote_socket=SOCKET)) == [
        "ssh",
        "-o",
        "ServerAliveInterval=9",
        "-M",
        "-N",
        "-L",
        f"127.0.0.1:18888:{SOCKET}",
        "-o",
        'ControlPath="/state/ssh/c-42"',
        "-o",
        "ControlPersist=no",
        "-o",
        "ExitOnForwardFailure=yes",
        *KEEPALIVE,
        "--",
        "alice@gpu1",
    ]
    assert plan.remote("labshare info --json") == [
        "ssh",
        "-o",
        "ServerAliveInterval=9",
        "-o",
        "ControlMaster=no",
        "-o",
        'ControlPath="/state/ssh/c-42"',
        "-T",
        "--",
        "alice@gpu1",
        "labshare info --json",
    ]
    forward = sshcmd.Forward(18889, remote_port=8888)
    assert plan.add_forward(forward)[-6:] == [
        "-O",
        "forward",
        "-L",
        forward.spec(),
        "--",
        "alice@gpu1",
    ]
    assert plan.cancel_forward(forward)[-6:] == [
        "-O",
        "cancel",
        "-L",
        forward.spec(),
        "--",
        "alice@gpu1",
    ]


def test_plain_ssh_has_no_control_socket_anywhere() -> None:
    plan = sshcmd.Plan(TARGET)
    forward = sshcmd.Forward(18888, remote_socket=SOCKET)
    assert plan.tunnel(forward) == [
        "ssh",
        "-o",
        "ServerAliveInterval=9",
        "-N",
        "-L",
        f"127.0.0.1:18888:{SOCKET}",
        "-o",
        "ExitOnForwardFailure=yes",
        *KEEPALIVE,
        "--",
        "alice@gpu1",
    ]
    assert plan.remote("true") == [
        "ssh",
        "-o",
        "ServerAliveInterval=9",
        "-T",
        "--",
        "alice@gpu1",
        "true",
    ]


def test_a_destination_that_looks_like_an_option_stays_a_destination() -> None:
    plan = sshcmd.Plan(sshcmd.Target("-oProxyCommand=x"), control_path=Path("/s/c"))
    for argv in (plan.master(), plan.remote("true"), plan.tunnel(sshcmd.Forward(1, remote_port=2))):
        assert argv[argv.index("--") + 1] == "-oProxyCommand=x", argv


def test_the_manual_line_is_quoted_for_the_laptops_shell() -> None:
    forward = sshcmd.Forward(18888, remote_socket="/home/a b/jupyter.sock")
    posix = sshcmd.manual_command(TARGET, forward, system="posix")
    assert shlex.split(posix) == [
        "ssh",
        "-N",
        "-L",
        "127.0.0.1:18888:/home/a b/jupyter.sock",
        "-o",
        "ServerAliveInterval=9",
        "alice@gpu1",
    ]
    assert sshcmd.manual_command(TARGET, forward, system="nt") == (
        'ssh -N -L "127.0.0.1:18888:/home/a b/jupyter.sock" -o ServerAliveInterval=9 alice@gpu1'
    )


def test_the_control_socket_moves_to_tmp_when_the_state_path_is_too_long_for_sun_path() -> None:
    assert (
        dial.control_dir("/home/al/.local/state/labshare", "/tmp", 1000)
        == "/home/al/.local/state/labshare/ssh"
    )
    deep = "/home/" + "x" * 80
    assert dial.control_dir(deep, "/tmp", 1000) == "/tmp/labshare-1000/ssh"


def test_the_remote_command_finds_labshare_then_runs_it_with_the_arguments_quoted() -> None:
    line = sshcmd.remote_command(["info", "--json", "a b"])
    assert line.startswith("sh -c ")
    script = shlex.split(line)[2]
    assert "exec labshare info --json 'a b'" in script and '"$HOME/.local/bin/labshare"' in script
    pinned = shlex.split(sshcmd.remote_command(["stop"], labshare="~/bin/labshare"))[2]
    assert pinned.startswith(
        'if [ -x "$HOME"/bin/labshare ]; then exec "$HOME"/bin/labshare stop; fi;'
    )
