"""`labshare start/status/info/stop/restart` against a real JupyterLab."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import Member, lab_of

from labshare import localports, probe


def test_start_serves_on_private_socket_with_token(member: Member) -> None:
    done = member.run("start")
    assert done.returncode == 0, done.stderr
    assert "labshare connect" in done.stdout and "ssh -N -L" in done.stdout

    status = member.json("status")
    for key in (
        "running",
        "pid",
        "supervisor_pid",
        "mode",
        "socket",
        "port",
        "root_dir",
        "started_at",
        "restarts",
        "kernels",
        "last_activity",
    ):
        assert key in status
    assert status["running"] is True and status["mode"] == "socket" and status["port"] is None
    assert status["root_dir"] == str(member.home / "projects")
    assert status["restarts"] == 0

    sock = Path(status["socket"])
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(member.state_dir.stat().st_mode) == 0o700
    token_file = member.state_dir / "token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600

    token = token_file.read_text()
    assert len(token) >= 43 and token == token.strip()
    addr = probe.Address(socket=str(sock))
    assert probe.request(addr, "/api/status").status == 403
    assert probe.request(addr, "/api/status", token=token).status == 200

    info = member.json("info")
    assert info["token"] == token and info["user"] == member.name and info["host"]


def test_token_never_on_a_command_line_or_in_readable_files(member: Member) -> None:
    member.run("start", check=True)
    token = (member.state_dir / "token").read_text()
    lab = lab_of(member)
    lab.start_kernel()
    args = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert token not in args
    for path in member.home.rglob("*"):
        if path.is_file() and not path.is_symlink():
            mode = path.stat().st_mode
            if mode & stat.S_IROTH or mode & stat.S_IRGRP:
                assert token not in path.read_text(errors="replace"), path
    assert token not in (member.state_dir / "server.log").read_text()


def test_second_start_reports_the_running_server(member: Member) -> None:
    first = member.json("start")
    second = member.run("start", "--json")
    assert second.returncode == 0
    import json

    again = json.loads(second.stdout)
    assert again["already_running"] is True
    assert again["status"]["pid"] == first["status"]["pid"]


def test_stop_leaves_nothing_behind(member: Member) -> None:
    info = member.json("start")["status"]
    lab = lab_of(member)
    kernel = lab.start_kernel()
    assert lab.execute(kernel, "print(6*7)").strip() == "42"
    done = member.run("stop")
    assert done.returncode == 0, done.stderr
    assert "stopped" in done.stdout
    assert member.processes() == []
    assert not Path(info["socket"]).exists()
    assert not (member.state_dir / "server.json").exists()
    assert not (member.state_dir / "token").exists()
    assert member.run("status").returncode == 3
    assert member.run("stop").returncode == 0


def test_tcp_mode_binds_loopback_only(member: Member) -> None:
    status = member.json("start", "--tcp")["status"]
    assert status["mode"] == "tcp" and status["socket"] is None and status["port"]
    # picked below the ephemeral range, where no outgoing connection takes it before Jupyter binds it
    assert localports.PICK_FROM <= status["port"] < localports.ephemeral_from(), status["port"]
    import psutil

    pid = status["pid"]
    listening = [
        c.laddr for c in psutil.Process(pid).net_connections("inet") if c.status == "LISTEN"
    ]
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening), listening
    addr = probe.Address(port=status["port"])
    assert probe.request(addr, "/api/status").status == 403
    assert probe.request(addr, "/api/contents").status == 403


def test_restart_keeps_folder_address_and_token(member: Member) -> None:
    member.run("start", "--tcp", check=True)
    before = member.json("info")
    done = member.run("restart", "--json")
    assert done.returncode == 0, done.stderr
    after = member.json("info")
    assert after["pid"] != before["pid"]
    assert (after["port"], after["token"], after["root_dir"]) == (
        before["port"],
        before["token"],
        before["root_dir"],
    )
    assert after["running"]


def test_logs_show_jupyter_output(member: Member) -> None:
    member.run("start", check=True)
    done = member.run("logs", "-n", "200")
    assert done.returncode == 0
    assert "Jupyter Server" in done.stdout
    assert os.path.exists(member.state_dir / "server.log")
    entries = [
        json.loads(line) for line in member.run("logs", "--json", "-n", "200").stdout.splitlines()
    ]
    text = done.stdout.splitlines()  # the server may have written more since
    assert [e["line"] for e in entries][: len(text)] == text
    assert any(
        e["level"] == "info" and e["source"] == "ServerApp" and "Jupyter Server" in e["message"]
        for e in entries
    )


def test_status_does_not_import_jupyter(member: Member) -> None:
    import sys

    member.run("start", check=True)
    done = member.run_cmd(
        [sys.executable, "-X", "importtime", "-m", "labshare", "status", "--json"]
    )
    assert done.returncode == 0
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "jupyter_server" not in imported and "jupyter_client" not in imported
    assert "labshare.server.status" in imported and "labshare.server.lifecycle" not in imported


@pytest.mark.quick
def test_log_rotation_keeps_backups(tmp_path: Path) -> None:
    from labshare.server import supervise

    log = tmp_path / "server.log"
    with open(log, "ab") as out:
        out.write(b"x" * (supervise.LOG_MAX_BYTES + 10))
        supervise.rotate(log)
        out.write(b"after rotation\n")
    assert (tmp_path / "server.log.1").stat().st_size == supervise.LOG_MAX_BYTES + 10
    assert log.read_bytes() == b"after rotation\n"
