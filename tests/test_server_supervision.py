"""The server outlives the login session and comes back from crashes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
from conftest import LABSHARE, Member, lab_of, wait_for

from labshare.monitor import argv


def session_ended(sid: int) -> bool:
    """No live process is left in session `sid`: whatever its hangup and kill could reach has ended."""
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == sid and proc.status() != psutil.STATUS_ZOMBIE:
                return False
        except (OSError, psutil.Error):
            continue
    return True


def test_survives_hangup_of_the_login_session(member: Member) -> None:
    # A login shell in its own session, as sshd would make; `start` runs in it, then the session is hung up.
    session = member.popen(
        ["setsid", "bash", "-c", f"{LABSHARE} start >/dev/null 2>&1; echo started; sleep 600"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert session.stdout.readline().strip() == "started"
        lab = lab_of(member)
        kernel = lab.start_kernel()
        lab.execute(kernel, "x = 41")
        os.killpg(session.pid, signal.SIGHUP)
        os.killpg(session.pid, signal.SIGKILL)
    finally:
        session.wait()
    wait_for(lambda: session_ended(session.pid), what="every process of the login session to end")
    status = member.json("status")
    assert status["running"] and status["restarts"] == 0
    assert lab.execute(kernel, "print(x + 1)").strip() == "42"


def test_crashed_jupyter_is_restarted_and_counted(member: Member) -> None:
    first = member.json("start")["status"]
    os.kill(first["pid"], signal.SIGKILL)
    killed = time.monotonic()

    def back():
        status = member.json("status")
        return status if status["running"] and status["pid"] != first["pid"] else None

    status = wait_for(back, timeout=90, what="the restarted server")
    print(f"serving again {time.monotonic() - killed:.1f} s after SIGKILL")
    assert status["restarts"] == 1
    assert status["supervisor_pid"] == first["supervisor_pid"]
    assert "died with exit code -9" in member.run("logs", "-n", "400").stdout


def test_idle_shutdown_exit_is_not_a_crash(member: Member) -> None:
    status = member.json("start")["status"]
    lab = lab_of(member)
    assert lab.call("POST", "/api/shutdown").status == 200
    wait_for(lambda: not psutil.pid_exists(status["supervisor_pid"]), what="the supervisor to end")
    assert member.run("status").returncode == 3
    assert not (member.state_dir / "server.json").exists()


def test_ten_parallel_starts_make_one_server(member: Member) -> None:
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda _: member.run("start", "--json", timeout=300), range(10)))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    import json

    pids = {json.loads(r.stdout)["status"]["pid"] for r in results}
    assert len(pids) == 1
    assert sum(not json.loads(r.stdout)["already_running"] for r in results) == 1
    jupyters = [p for p in member.processes() if argv.server_kind(p.cmdline()) == "lab"]
    assert len(jupyters) == 1
    supervisors = [
        p for p in member.processes() if "labshare.server.supervise" in " ".join(p.cmdline())
    ]
    assert len(supervisors) == 1
    member.run("stop", check=True)
    assert member.processes() == []


def test_stale_state_after_kill_is_cleaned_and_reported(member: Member) -> None:
    status = member.json("start")["status"]
    for pid in (status["supervisor_pid"], status["pid"]):
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not psutil.pid_exists(status["pid"]), what="jupyter to die")
    member.reap()
    after = member.json("status")
    assert after["running"] is False
    assert any("no longer running" in note for note in after["notes"])
    assert not os.path.exists(status["socket"])
    again = member.json("start")
    assert again["status"]["running"] and again["already_running"] is False
