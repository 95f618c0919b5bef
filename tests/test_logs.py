"""`labshare logs --json`: one JSON object a line, read from a real log by the real CLI, `-f` too.

The parts of a line (`server.logs.entry`) are pure and checked in this
process; the rest runs `labshare logs` as a member would, on a log file
written as Jupyter and the supervisor write theirs (a started server's own
log is read in test_server_lifecycle).
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess

import psutil
import pytest
from conftest import LABSHARE, Member, wait_for

from labshare.server.logs import entry

JUPYTER = "[W 2026-12-07 12:00:00.123 ServerApp] No web browser found: Error('could not locate runnable browser')."
SUPERVISOR = "[labshare 2026-12-07 12:00:01] stopped on request (Jupyter exit code 0)"
OTHER = "Traceback (most recent call last):"


def local(stamp: str) -> str:
    return dt.datetime.fromisoformat(stamp).astimezone().isoformat()


@pytest.mark.quick
def test_a_jupyter_line_has_time_level_source_and_message() -> None:
    e = entry(JUPYTER)
    assert (e.time, e.level, e.source) == (local("2026-12-07 12:00:00.123"), "warning", "ServerApp")
    assert (
        e.message == "No web browser found: Error('could not locate runnable browser')."
        and e.line == JUPYTER
    )


@pytest.mark.quick
def test_a_supervisor_note_has_no_level() -> None:
    e = entry(SUPERVISOR)
    assert (e.time, e.level, e.source) == (local("2026-12-07 12:00:01"), None, "labshare")
    assert e.message == "stopped on request (Jupyter exit code 0)"


@pytest.mark.quick
def test_any_other_line_is_all_message() -> None:
    e = entry(OTHER)
    assert (e.time, e.level, e.source, e.message, e.line) == (None, None, None, OTHER, OTHER)


def write_log(m: Member, *lines: str) -> None:
    m.state_dir.mkdir(parents=True, exist_ok=True)
    with open(m.state_dir / "server.log", "a") as log:
        log.writelines(line + "\n" for line in lines)


def test_logs_json_prints_one_object_a_line_and_keeps_the_text(member: Member) -> None:
    write_log(member, JUPYTER, OTHER, SUPERVISOR)
    done = member.run("logs", "--json", "-n", "2")
    assert done.returncode == 0, done.stderr
    objects = [json.loads(line) for line in done.stdout.splitlines()]
    assert [o["line"] for o in objects] == [OTHER, SUPERVISOR]
    assert set(objects[1]) == {"time", "level", "source", "message", "line"}
    assert objects[1]["source"] == "labshare"
    assert member.run("logs", "-n", "3").stdout == f"{JUPYTER}\n{OTHER}\n{SUPERVISOR}\n"


def test_logs_json_without_a_log_is_one_error_line(member: Member) -> None:
    done = member.run("logs", "--json")
    assert done.returncode == 1 and done.stdout.count("\n") == 1
    assert "labshare start" in json.loads(done.stdout)["error"]["message"]


def test_logs_follow_json_prints_each_new_line_as_it_comes(member: Member) -> None:
    write_log(member, OTHER)
    follower = member.popen(
        [LABSHARE, "logs", "-f", "--json", "-n", "1"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert json.loads(follower.stdout.readline())["line"] == OTHER
        log = str(member.state_dir / "server.log")
        wait_for(
            lambda: any(f.path == log for f in psutil.Process(follower.pid).open_files()),
            what="logs -f to open the log for following",
        )
        write_log(member, JUPYTER)
        assert json.loads(follower.stdout.readline())["level"] == "warning"
    finally:
        follower.terminate()
        follower.wait(timeout=30)
