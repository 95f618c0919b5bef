"""Kernels survive a crash, restart or upgrade of their server and are re-adopted with the same id."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from conftest import Member, lab_of, site_file, wait_for
from jupyter_api import Lab


def dead(pid: int) -> bool:
    """Gone or a zombie: an adopted kernel is no child of ours, so nobody here reaps it."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def new_server(member: Member, old_pid: int) -> dict:
    def back():
        status = member.json("status")
        return status if status["running"] and status["pid"] not in (None, old_pid) else None

    return wait_for(back, what="the new server")


def open_notebook(lab: Lab, path: str = "analysis.ipynb") -> tuple[str, str]:
    session = lab.ok(
        "POST", "/api/sessions", {"path": path, "type": "notebook", "kernel": {"name": "python3"}}
    )
    return session["id"], session["kernel"]["id"]


def execution_state(lab: Lab, kernel: str) -> str:
    return lab.ok("GET", f"/api/kernels/{kernel}")["execution_state"]


def send_and_forget(lab: Lab, kernel: str, code: str) -> threading.Thread:
    """Start `code` through a websocket that dies with the server, as a closed browser tab would.

    Returns once the kernel reports busy with it.  Not busy is awaited first (a
    fresh kernel says "starting" and an adopted one "busy" until it answers
    the server's `kernel_info`), so the busy seen after sending is this code's.
    """

    def run() -> None:
        try:
            lab.execute(kernel, code, timeout=120)
        except Exception:
            pass

    wait_for(lambda: execution_state(lab, kernel) != "busy", what="the kernel to be free")
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_for(
        lambda: execution_state(lab, kernel) == "busy", what="the kernel to report busy", every=0.05
    )
    return thread


def held(code: str) -> str:
    """`code`, after waiting for the test to make `go` in the kernel's folder.

    A fixed sleep had to outlast the next server's start, which a loaded
    machine can stretch past it; this stays busy until the test has looked.
    """
    return "import os, time\nwhile not os.path.exists('go'):\n    time.sleep(0.05)\n" + code


def test_kernel_and_session_survive_sigkill_of_the_server(member: Member) -> None:
    member.run("start", check=True)
    lab = lab_of(member)
    session, kernel = open_notebook(lab)
    lab.execute(kernel, "x = 41")
    send_and_forget(lab, kernel, held("result = 'finished'"))
    before = member.json("status")
    os.kill(before["pid"], signal.SIGKILL)
    after = new_server(member, before["pid"])
    assert after["restarts"] == 1
    assert [k["id"] for k in lab.ok("GET", "/api/kernels")] == [kernel]
    sessions = lab.ok("GET", "/api/sessions")
    assert [(s["id"], s["path"], s["kernel"]["id"]) for s in sessions] == [
        (session, "analysis.ipynb", kernel)
    ]
    assert (
        lab.ok("GET", f"/api/kernels/{kernel}")["execution_state"] == "busy"
    )  # the computation goes on
    (Path(after["root_dir"]) / "go").touch()
    assert lab.execute(kernel, "print(x + 1)", timeout=120).strip() == "42"
    assert lab.execute(kernel, "print(result)").strip() == "finished"
    survived = {k["id"]: k["server_restarts_survived"] for k in after["surviving_kernels"]}
    assert survived == {kernel: 1}
    assert "carried over" in member.run("status").stdout


def test_restart_twice_keeps_kernels_and_stop_ends_them(member: Member) -> None:
    member.run("start", check=True)
    lab = lab_of(member)
    session, kernel = open_notebook(lab)
    lab.execute(kernel, "x = 1")
    pid = lab.ok("GET", "/api/status") and member.json("status")["pid"]
    kernel_pid = member.json("status")["surviving_kernels"][0]["pid"]
    for n in (1, 2):
        done = member.run("restart", "--json")
        assert done.returncode == 0, done.stderr
        status = json.loads(done.stdout)["status"]
        assert status["pid"] != pid
        pid = status["pid"]
        lab = lab_of(member)
        assert [k["id"] for k in lab.ok("GET", "/api/kernels")] == [kernel]
        assert lab.ok("GET", "/api/sessions")[0]["id"] == session
        assert lab.execute(kernel, "x += 1; print(x)").strip() == str(1 + n)
        assert member.json("status")["surviving_kernels"][0]["server_restarts_survived"] == n
    member.run("stop", check=True)
    assert wait_for(lambda: dead(kernel_pid), what="the kernel to end")
    assert list((member.state_dir / "kernels").glob("*.json")) == []


def test_stop_keep_kernels_then_start_adopts(member: Member) -> None:
    member.run("start", check=True)
    lab = lab_of(member)
    _, kernel = open_notebook(lab)
    lab.execute(kernel, "y = 'kept'")
    done = member.run("stop", "--keep-kernels")
    assert done.returncode == 0 and "left running" in done.stdout
    member.run("start", check=True)
    lab = lab_of(member)
    assert lab.execute(kernel, "print(y)").strip() == "kept"


def test_adopted_kernel_interrupt_restart_delete(member: Member) -> None:
    member.run("start", check=True)
    lab = lab_of(member)
    _, kernel = open_notebook(lab)
    lab.execute(kernel, "z = 5")
    before = member.json("status")
    os.kill(before["pid"], signal.SIGKILL)
    new_server(member, before["pid"])

    inside = Path(before["root_dir"]) / "inside-try"
    send_and_forget(
        lab,
        kernel,
        "import pathlib, time\ntry:\n    pathlib.Path('inside-try').touch()\n"
        "    time.sleep(60)\nexcept KeyboardInterrupt:\n    interrupted = True\n",
    )
    wait_for(
        inside.exists, what="the cell to be inside its try", every=0.05
    )  # busy comes a moment before
    assert lab.call("POST", f"/api/kernels/{kernel}/interrupt").status == 204
    assert wait_for(
        lambda: lab.execute(kernel, "print(interrupted)").strip() == "True", what="interrupt"
    )

    old_pid = member.json("status")["surviving_kernels"][0]["pid"]
    assert lab.call("POST", f"/api/kernels/{kernel}/restart").status == 200
    assert "NameError" in _error_of(lab, kernel, "print(z)")
    assert wait_for(lambda: dead(old_pid), what="the old kernel process to end")
    assert lab.execute(kernel, "print('fresh')").strip() == "fresh"

    assert lab.call("DELETE", f"/api/kernels/{kernel}").status == 204
    assert lab.ok("GET", "/api/kernels") == []
    assert list((member.state_dir / "kernels").glob("*.json")) == []


def _error_of(lab: Lab, kernel: str, code: str) -> str:
    try:
        lab.execute(kernel, code)
    except AssertionError as exc:
        return str(exc)
    return ""


def test_kernel_that_died_while_no_server_ran_is_dropped_with_its_session(member: Member) -> None:
    member.run("start", check=True)
    lab = lab_of(member)
    _, doomed = open_notebook(lab, "doomed.ipynb")
    _, kept = open_notebook(lab, "kept.ipynb")
    status = member.json("status")
    pids = {k["id"]: k["pid"] for k in status["surviving_kernels"]}
    os.kill(status["supervisor_pid"], signal.SIGKILL)
    os.kill(status["pid"], signal.SIGKILL)
    os.kill(pids[doomed], signal.SIGKILL)
    wait_for(lambda: dead(pids[doomed]), what="the kernel to die")
    member.run("start", check=True)
    lab = lab_of(member)
    assert [k["id"] for k in lab.ok("GET", "/api/kernels")] == [kept]
    assert [s["path"] for s in lab.ok("GET", "/api/sessions")] == ["kept.ipynb"]
    assert not (member.state_dir / "kernels" / f"{doomed}.json").exists()
    assert not list((member.state_dir / "runtime").glob(f"kernel-{doomed}*"))


@pytest.mark.slow
def test_busy_state_is_probed_so_a_silent_computation_is_not_culled(
    member: Member, tmp_path: Path
) -> None:
    # Long enough for a loaded machine to start a kernel and hand it work before it counts as idle.
    site = site_file(tmp_path, "[server]\ncull_idle_kernels_after = 10\n")
    member.extra_env["LABSHARE_SITE_CONFIG"] = str(site)
    member.run("start", check=True)
    lab = lab_of(member)
    _, busy = open_notebook(lab, "busy.ipynb")
    send_and_forget(lab, busy, held("answer = 42"))
    _, idle = open_notebook(lab, "idle.ipynb")
    before = member.json("status")
    os.kill(before["pid"], signal.SIGKILL)
    new_server(member, before["pid"])
    wait_for(
        lambda: idle not in {k["id"] for k in lab.ok("GET", "/api/kernels")},
        what="the idle kernel culled",
    )
    assert busy in {k["id"] for k in lab.ok("GET", "/api/kernels")}
    (Path(before["root_dir"]) / "go").touch()
    assert lab.execute(busy, "print(answer)", timeout=60).strip() == "42"


def test_other_user_can_neither_read_records_nor_drive_the_kernel(
    member: Member, make_user
) -> None:
    member.run("start", check=True)
    lab = lab_of(member)
    _, kernel = open_notebook(lab)
    record = member.state_dir / "kernels" / f"{kernel}.json"
    info = json.loads(record.read_text())["connection_info"]
    assert oct(record.stat().st_mode & 0o777) == "0o600"
    intruder = make_user()
    read = intruder.run_cmd(["cat", str(record)])
    assert read.returncode != 0 and "Permission denied" in read.stderr
    attack = (
        "import json, sys, zmq\n"
        "from jupyter_client.session import Session\n"
        "info = json.loads(sys.argv[1])\n"
        "ctx = zmq.Context(); s = ctx.socket(zmq.DEALER); s.linger = 0\n"
        "s.connect(f\"tcp://{info['ip']}:{info['shell_port']}\")\n"
        "sess = Session(key=b'guessed-key')\n"
        "sess.send(s, sess.msg('execute_request', content={'code': 'open(\"/tmp/pwned\", \"w\")', 'silent': False}))\n"
        "print('reply' if s.poll(5000) else 'silence')\n"
    )
    public = {k: info[k] for k in ("ip", "shell_port")}
    done = intruder.run_cmd([sys.executable, "-c", attack, json.dumps(public)])
    assert done.stdout.strip() == "silence", done.stdout + done.stderr
    assert not Path("/tmp/pwned").exists()


@pytest.mark.browser
@pytest.mark.slow  # Lab's reconnect back-off alone is 15-25 s; 30-50 s in the whole run
@pytest.mark.parametrize("outputs", ["--keep-outputs", "--no-keep-outputs"])
def test_open_lab_tab_keeps_its_kernel_across_a_server_crash(
    member: Member, tmp_path: Path, outputs: str
) -> None:
    from browser import chromium, run_cell, wait_for_kernel

    status = member.json("start", "--tcp", outputs)["status"]
    lab = lab_of(member)
    empty = {
        "cells": [],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    lab.ok("PUT", "/api/contents/crash.ipynb", {"type": "notebook", "content": empty})
    with chromium(tmp_path / "shots") as browser:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{status['port']}/lab/tree/crash.ipynb?token={lab.token}")
        page.locator(".jp-Notebook").wait_for(timeout=120_000)
        wait_for(lambda: lab.ok("GET", "/api/sessions"), what="the tab's kernel session")
        wait_for_kernel(page)
        assert run_cell(page, "x = 41; print('set')").strip() == "set"
        kernel = [k["id"] for k in lab.ok("GET", "/api/kernels")]
        before = member.json("status")
        os.kill(before["pid"], signal.SIGKILL)
        new_server(member, before["pid"])
        assert [k["id"] for k in lab.ok("GET", "/api/kernels")] == kernel
        # The tab reconnects by itself.  Without output keeping a cell goes over the tab's kernel
        # connection, which Lab opens again after a back-off of its own (15-25 s seen), showing
        # "Connecting" until then: wait for that, not for a typed cell's 15 s below to run out.  (With
        # it, the server runs the cell, connection or not.)  A cell typed before its document has
        # re-synced may be replaced by the server's copy, so type again until the tab is back (as a
        # person would).
        if outputs == "--no-keep-outputs":
            wait_for_kernel(page, timeout_ms=180_000)
        deadline = time.monotonic() + 180
        while True:
            try:
                assert run_cell(page, "print(x + 1)", timeout_ms=15_000).strip() == "42"
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                page.keyboard.press("Escape")
        assert [k["id"] for k in lab.ok("GET", "/api/kernels")] == kernel


def test_ps_shows_how_many_restarts_a_kernel_survived(member: Member) -> None:
    member.run("start", check=True)
    lab = lab_of(member)
    _, kernel = open_notebook(lab)
    member.run("restart", check=True)
    kernels = [k for s in member.json("ps") if s["user"] == member.name for k in s["kernels"]]
    mine = [k for k in kernels if k["kernel_id"] == kernel]
    assert mine and mine[0]["server_restarts_survived"] == 1
    assert "survived 1 restart" in member.run("ps").stdout
