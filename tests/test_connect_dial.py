"""A later `connect` starts its ssh login before the CLI is imported, and never leaves that ssh behind.

Every ssh the laptop runs goes through a logging wrapper in front of the real
client, so the tests see which ssh command came first and how many masters
were started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sshd as sshd_helper
from conftest import LABSHARE, wait_for
from jupyter_api import Lab
from test_connect import Connect
from test_connect_known import connect_once, memory

pytestmark = [pytest.mark.sshd, pytest.mark.xdist_group("connect-dial")]  # one booted server

# Holds the import of labshare.cli until the test says go, so a signal lands in the middle of an import.
PAUSE_IMPORT = """
import os, sys, time

class Pause:
    def find_spec(self, name, path=None, target=None):
        if name == "labshare.cli":
            sys.meta_path.remove(self)
            open(os.environ["PAUSE_MARK"], "w").close()
            while not os.path.exists(os.environ["PAUSE_GO"]):
                time.sleep(0.005)
        return None

sys.meta_path.insert(0, Pause())
"""

WRAPPER = """#!/bin/sh
echo "$*" >> "$HOME/ssh-calls.log"
exec /usr/bin/ssh "$@"
"""


@pytest.fixture
def lab(shared: sshd_helper.Lab) -> sshd_helper.Lab:
    """The module's running server, from a laptop that has connected to it once, every later ssh call logged."""
    first = connect_once(shared.laptop)
    assert first["local_port"] == remembered_port(shared)
    wrapper = shared.laptop.home / "bin" / "ssh"
    wrapper.parent.mkdir()
    wrapper.write_text(WRAPPER)
    wrapper.chmod(0o755)
    shared.laptop.extra_env["PATH"] = f"{wrapper.parent}:{shared.laptop.env['PATH']}"
    return shared


def remembered_port(lab: sshd_helper.Lab) -> int:
    (known,) = lab.laptop.home.rglob("known-gpu1-*.json")
    return memory(known).local_port


def ssh_calls(lab: sshd_helper.Lab) -> list[str]:
    log = lab.laptop.home / "ssh-calls.log"
    return log.read_text().splitlines() if log.exists() else []


def laptop_ssh(lab: sshd_helper.Lab) -> bytes:
    return subprocess.run(
        ["pgrep", "-u", str(lab.laptop.uid), "-x", "ssh"], capture_output=True
    ).stdout


def write_config(lab: sshd_helper.Lab, text: str) -> None:
    config = lab.laptop.home / ".config/labshare/config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(text)


def test_a_later_connect_logs_in_first_once_and_on_the_same_port(lab: sshd_helper.Lab) -> None:
    c = Connect(lab.laptop, "gpu1")
    try:
        assert c.wait_for("connecting")["login_started"] is True
        ready = c.wait_for("ready")
        calls = ssh_calls(lab)
        assert calls[0].startswith("-M -N -L "), (
            calls
        )  # before `ssh -G`, i.e. before the CLI was imported
        assert [call for call in calls if call.startswith("-M")] == calls[:1], calls
        assert ready["local_port"] == remembered_port(lab)
        assert len(c.ssh_children()) == 1
        client = Lab.from_url(ready["url"])
        assert client.execute(client.start_kernel(), "print(6 * 7)").strip() == "42"
    finally:
        c.close()
    assert laptop_ssh(lab) == b""


def test_an_early_ssh_the_session_would_not_start_is_ended(lab: sshd_helper.Lab) -> None:
    port = sshd_helper.free_port()
    write_config(lab, f"[hosts.gpu1]\nlocal_port = {port}\n")
    c = Connect(lab.laptop, "gpu1")
    try:
        ready = c.wait_for("ready")
        assert ready["local_port"] == port
        masters = [call for call in ssh_calls(lab) if call.startswith("-M")]
        assert len(masters) == 2 and f"127.0.0.1:{port}:" not in masters[0], masters
        (ssh,) = c.ssh_children()
        assert f"127.0.0.1:{port}:" in " ".join(ssh.cmdline())
    finally:
        c.close()
    assert laptop_ssh(lab) == b""


def test_an_early_ssh_ends_with_a_connect_that_fails_or_is_stopped(lab: sshd_helper.Lab) -> None:
    write_config(lab, "[hosts.gpu1\n")
    done = lab.laptop.run_cmd([LABSHARE, "connect", "--no-browser", "gpu1"], timeout=120)
    assert done.returncode == 1 and "is not valid TOML" in done.stderr, done.stderr
    assert ssh_calls(lab)[0].startswith("-M"), ssh_calls(lab)
    assert laptop_ssh(lab) == b""

    write_config(lab, "")
    for sig in (signal.SIGTERM, signal.SIGINT):
        for pause in (0.0, 0.05, 0.2):
            log: Path = lab.laptop.home / "ssh-calls.log"
            log.unlink()
            c = Connect(lab.laptop, "gpu1")
            try:
                wait_for(log.exists, timeout=30, what="connect's first ssh", every=0.01)
                time.sleep(pause)
                c.proc.send_signal(sig)
                assert c.proc.wait(30) in (0, 130, 128 + signal.SIGTERM)
                assert c.proc.stderr is not None and "Traceback" not in c.proc.stderr.read()
            finally:
                c.kill()
            wait_for(lambda: laptop_ssh(lab) == b"", timeout=10, what="no ssh left")


def test_no_early_ssh_when_its_control_dir_is_not_private(lab: sshd_helper.Lab) -> None:
    (control,) = lab.laptop.home.rglob("labshare/ssh")
    control.chmod(0o755)
    c = Connect(lab.laptop, "gpu1")
    try:
        assert c.wait_for("connecting")["login_started"] is False
        c.wait_for("ready")
        assert ssh_calls(lab)[0].startswith("-G"), ssh_calls(lab)
        assert control.stat().st_mode & 0o777 == 0o700  # the session made it private again
    finally:
        c.close()


def test_text_mode_prints_nothing_into_a_login_that_started_early(lab: sshd_helper.Lab) -> None:
    """ssh may be showing a password prompt by the time Python has loaded; a "Connecting" line would land in it."""
    proc = lab.laptop.popen(
        [LABSHARE, "connect", "--no-browser", "gpu1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert "is ready" in proc.stdout.readline()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert ssh_calls(lab)[0].startswith("-M"), ssh_calls(lab)
    assert "Connecting to" not in err and "Traceback" not in err, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_the_cli_is_imported_ends_the_early_ssh_and_then_the_session(
    lab: sshd_helper.Lab, sig: signal.Signals
) -> None:
    hook = lab.laptop.home / "pause-import"
    hook.mkdir()
    os.chown(hook, lab.laptop.uid, -1)  # the paused connect writes its mark here
    (hook / "sitecustomize.py").write_text(PAUSE_IMPORT)
    mark, go = hook / "paused", hook / "go"
    lab.laptop.extra_env.update(PYTHONPATH=str(hook), PAUSE_MARK=str(mark), PAUSE_GO=str(go))
    c = Connect(lab.laptop, "gpu1")
    try:
        wait_for(mark.exists, timeout=60, what="connect paused in its imports", every=0.01)
        calls = wait_for(
            lambda: ssh_calls(lab), timeout=30, what="the early ssh's wrapper to log it", every=0.01
        )
        assert calls[0].startswith("-M"), calls
        c.proc.send_signal(sig)
        wait_for(
            lambda: laptop_ssh(lab) == b"", timeout=10, what="the early ssh ended by the signal"
        )
        go.touch()
        closed = c.wait_for("closed", timeout=60)
        assert closed["reason"] == ("terminated" if sig == signal.SIGTERM else "interrupted")
        assert c.proc.wait(30) == 0
        assert c.proc.stderr is not None and c.proc.stderr.read() == ""
        assert [e["event"] for e in c.seen] == ["connecting", "closed"], c.seen
        assert ssh_calls(lab)[1:] == [], ssh_calls(lab)  # stopped before `ssh -G`
    finally:
        c.kill()
