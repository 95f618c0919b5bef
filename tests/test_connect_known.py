"""`labshare connect` remembers where a host's JupyterLab listens, and never trusts that memory blindly."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import sshd as sshd_helper
from conftest import LABSHARE, Member
from jupyter_api import Lab
from test_connect import Connect

from labshare.records import KnownServer

pytestmark = pytest.mark.sshd


def connect_once(laptop: Member, *args: str) -> dict:
    """One `connect` up to `ready`, then Ctrl-C'd (SIGTERM) as a member closing the terminal would."""
    c = Connect(laptop, *args, "gpu1")
    try:
        return c.wait_for("ready")
    finally:
        c.close()


def remembered(laptop: Member) -> list[Path]:
    return sorted(laptop.home.rglob("known-gpu1-*.json"))


def memory(path: Path) -> KnownServer:
    """A remembered server, read as connect reads it."""
    return KnownServer.from_json(json.loads(path.read_text()), str(path))


def test_second_connect_needs_no_round_trip_and_keeps_the_token_private(
    lab: sshd_helper.Lab,
) -> None:
    lab.server.run("start", check=True)
    first = connect_once(lab.laptop)
    (known,) = remembered(lab.laptop)
    assert known.stat().st_mode & 0o777 == 0o600 and known.parent.stat().st_mode & 0o777 == 0o700
    assert known.stat().st_uid == lab.laptop.uid
    assert memory(known).token == Lab.from_url(first["url"]).token

    # With labshare gone from the server, only the memory can lead to it.
    (lab.server.home / ".local/bin/labshare").unlink()
    c = Connect(lab.laptop, "gpu1")
    try:
        client = Lab.from_url(c.wait_for("ready")["url"])
        assert client.token == Lab.from_url(first["url"]).token
        assert client.execute(client.start_kernel(), "print(6 * 7)").strip() == "42"
    finally:
        c.kill()


def test_a_restarted_server_with_a_new_token_is_asked_again(lab: sshd_helper.Lab) -> None:
    lab.server.run("start", check=True)
    first = connect_once(lab.laptop)
    lab.server.run("stop", check=True)
    lab.server.run("start", check=True)
    token = lab.server.info().token
    assert Lab.from_url(first["url"]).token != token
    again = connect_once(lab.laptop)
    assert Lab.from_url(again["url"]).token == token
    (known,) = remembered(lab.laptop)
    assert memory(known).token == token


def test_a_stopped_server_is_reported_and_tcp_servers_are_not_remembered(
    lab: sshd_helper.Lab,
) -> None:
    lab.server.run("start", check=True)
    connect_once(lab.laptop)
    lab.server.run("stop", check=True)
    done = lab.laptop.run_cmd([LABSHARE, "connect", "--no-browser", "gpu1"], timeout=120)
    assert done.returncode == 3 and "not running on gpu1" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert remembered(lab.laptop) == []

    lab.server.run("start", "--tcp", check=True)
    ready = connect_once(lab.laptop)
    assert ready["mode"] == "tcp"
    assert remembered(lab.laptop) == []
    assert (
        subprocess.run(
            ["pgrep", "-u", str(lab.laptop.uid), "-x", "ssh"], capture_output=True
        ).stdout
        == b""
    )


def test_a_memory_others_could_have_written_is_ignored(lab: sshd_helper.Lab) -> None:
    lab.server.run("start", check=True)
    connect_once(lab.laptop)
    (known,) = remembered(lab.laptop)
    known.chmod(0o666)
    (lab.server.home / ".local/bin/labshare").unlink()
    done = lab.laptop.run_cmd([LABSHARE, "connect", "--no-browser", "gpu1"], timeout=120)
    assert done.returncode == 7 and "labshare is not installed on gpu1" in done.stderr, done.stderr
