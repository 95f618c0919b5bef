"""Notices' pure parts: the record and its line, who wants what, addressing, the delivery pass, how a kernel died.

The delivery pass is the real `Engine` over a real queue directory; its
channels are plain functions (the narrow interface the senders give it)
and its clock is a number the test moves, so backoff and expiry are
checked without waiting.  Pure and quick, as any user.
"""

from __future__ import annotations

import dataclasses
import json
import signal
from pathlib import Path

import pytest

from labshare.config import ConfigError, MemberNotify, SiteNotify, load_member, load_site
from labshare.jupyterside.cell_notices import death
from labshare.notify.engine import Channel, Engine, backoff
from labshare.notify.events import Event, wanted
from labshare.notify.queue import Queue, channel_tally
from labshare.notify.runs import Runs, error_line
from labshare.notify.service import addressed
from labshare.records.notice import Notice, span

pytestmark = pytest.mark.quick


def notice(n: int, at: float = 1000.0) -> Notice:
    return Notice(
        id=f"{n:013d}-abc",
        kind="run",
        user="alice",
        host="gpu1",
        what="failed (exit status 3)",
        subject=f"`job {n}`",
        seconds=125,
        link="labshare connect alice@gpu1",
        at=at,
    )


def test_a_notice_is_one_line_with_who_what_where_how_long_and_the_link_and_reads_back() -> None:
    n = notice(1)
    assert n.line() == (
        "alice@gpu1: `job 1` failed (exit status 3) after 2 min 5 s · labshare connect alice@gpu1"
    )
    assert Notice.from_json(json.loads(json.dumps(n.to_json())), "a notice") == n
    assert [span(s) for s in (42, 3600, 7260, 200000)] == ["42 s", "1 h", "2 h 1 min", "2 d 7 h"]


def test_a_failure_looks_like_one_on_the_phone() -> None:
    def severity(kind: str, what: str) -> str:
        return dataclasses.replace(notice(1), kind=kind, what=what).severity()

    assert severity("run", "failed (exit status 3)") == "failure"
    assert severity("cell", "cell failed: ValueError: bad shape") == "failure"
    assert severity("kernel_died", "kernel died (out of memory)") == "failure"
    assert (
        severity("server", "crashed and gave up: 5 restarts in 10 min; run `labshare start`")
        == "failure"
    )
    assert severity("server", "crashed (exit code 1) and came back: restart 1") == "warning"
    assert (
        severity("reclaim", "GPU reclaim warning: its kernel will be shut down at 14:00")
        == "warning"
    )
    assert severity("cell", "3 cells finished") == severity("run", "finished") == "success"
    assert severity("test", "reached you: this is a test notice") == "info"


def test_who_wants_what_and_the_config_keys_each_file_may_set(tmp_path: Path) -> None:
    lab = SiteNotify(channels_file="/etc/labshare/channels.toml")
    own = MemberNotify(url="ntfy://ntfy.sh/t", min_duration=60)
    assert wanted(Event("run", "finished", seconds=61), own, SiteNotify())
    assert not wanted(Event("cell", "finished", seconds=59), own, SiteNotify())
    assert wanted(
        Event("kernel_died", "kernel died"), MemberNotify(), lab
    )  # the lab's channel only
    assert not wanted(Event("kernel_died", "kernel died"), MemberNotify(), SiteNotify())
    assert not wanted(Event("run", "x", seconds=99), MemberNotify(url="x", enabled=False), lab)
    assert not wanted(Event("reclaim", "x"), MemberNotify(url="x", events=("cell",)), lab)

    mine = tmp_path / "config.toml"
    mine.write_text('[notify]\nurl = "ntfy://ntfy.sh/t"\nmin_duration = "90s"\nevents = ["run"]\n')
    assert load_member(mine).notify == MemberNotify("ntfy://ntfy.sh/t", 90.0, ("run",), True)
    mine.write_text('[notify]\nevents = ["cells"]\n')
    with pytest.raises(ConfigError, match=r"notify\.events: must be a list drawn from cell, "):
        load_member(mine)
    mine.write_text('[notify]\nchannels_file = "/tmp/x"\n')  # the admin's key, not a member's
    with pytest.raises(ConfigError, match="has no key `channels_file`"):
        load_member(mine)
    site = tmp_path / "site.toml"
    site.write_text('[notify]\nchannels_file = "/etc/c.toml"\naddress = { alice = "<@U1>" }\n')
    table = load_site(site).notify
    assert (table.address_of("alice"), table.address_of("bob")) == ("<@U1>", None)
    site.write_text('[notify]\naddress = "lab.example"\n')  # no {user}: everyone one address
    with pytest.raises(ConfigError, match=r"notify\.address"):
        load_site(site)


def test_the_lab_channels_address_each_member_and_never_someone_else() -> None:
    mail = "mailtos://u:p@smtp.lab.example?to={address}"
    assert addressed(mail, "alice@lab.example", "alice") == (
        "mailtos://u:p@smtp.lab.example?to=alice@lab.example",
        "",
    )
    assert addressed(mail, None, "bob") is None  # no address for bob: not someone else's
    assert addressed("slack://a/b/c/#gpus", "<@U1>", "alice") == ("slack://a/b/c/#gpus", "<@U1>: ")
    assert addressed("json://h/{user}", "alice", "alice") == ("json://h/alice", "")


def run_engine(tmp_path: Path, sends: dict[str, list[str | None]], clock: list[float]):
    queue = Queue(tmp_path / "q").ensure()
    calls: dict[str, list[str]] = {name: [] for name in sends}

    def channel(name: str) -> Channel:
        def send(n: Notice) -> str | None:
            calls[name].append(n.id)
            answers = sends[name]
            return answers.pop(0) if answers else None

        return Channel(name, send)

    chans = [channel(name) for name in sends]
    engine = Engine(queue, lambda _k, _n: chans, expire_after=3600, clock=lambda: clock[0])
    return queue, engine, calls


def test_each_notice_goes_once_per_channel_a_down_one_waits_and_an_old_one_expires(
    tmp_path: Path,
) -> None:
    clock = [1000.0]
    queue, engine, calls = run_engine(tmp_path, {"up": [], "down": ["refused", "refused"]}, clock)
    for n in range(3):
        queue.add(notice(n).id, notice(n))
    assert engine.step() == backoff(1) == 1.0  # "down" failed once: the rest wait behind it
    assert len(calls["up"]) == 3 and len(calls["down"]) == 1
    clock[0] += 1
    assert engine.step() == backoff(2) == 2.0
    clock[0] += 2
    assert engine.step() is None  # it came back: all three, in order, and nothing is owed
    assert calls["up"] == calls["down"][2:] == [notice(n).id for n in range(3)]
    assert queue.keys() == []
    down = channel_tally(queue.tally(), "down")
    assert (down.sent, down.failures, down.streak, down.last_error) == (3, 2, 0, "refused")

    queue.add("0000000000009-old", notice(9, at=clock[0] - 4000))
    assert engine.step() is None and calls["up"][-1] != notice(9).id
    assert channel_tally(queue.tally(), "up").expired == 1


def test_a_failure_is_on_disk_with_its_reason_as_soon_as_the_log_says_it_failed(
    tmp_path: Path,
) -> None:
    """`notify test` reads the log, then the reason from the tally; a reason saved only at the end of
    the step read as a bare "failed" (seen in CI for the lab's spool)."""
    seen: list[str | None] = []
    queue = Queue(tmp_path / "q").ensure()

    def look(n: Notice) -> None:
        reader = Queue(tmp_path / "q")  # another process's view, as `notify test` has
        reader.load_log()
        if reader.known.get((n.id, "down")) == "failed":
            seen.append(channel_tally(reader.tally(), "down").last_error)
        return None

    chans = [Channel("down", lambda _n: "the spool has mode 755"), Channel("later", look)]
    engine = Engine(queue, lambda _k, _n: chans, expire_after=3600, clock=lambda: 1000.0)
    queue.add(notice(1).id, notice(1))
    engine.step()
    assert seen == ["the spool has mode 755"]


def test_a_try_a_sender_died_during_is_never_repeated_and_a_restart_keeps_the_backoff(
    tmp_path: Path,
) -> None:
    clock = [1000.0]
    queue, engine, _calls = run_engine(tmp_path, {"own": ["down"]}, clock)
    queue.add(notice(1).id, notice(1))
    queue.add(notice(2).id, notice(2))
    engine.step()  # notice 1 failed; its retry is due in 1 s
    queue.note(notice(2).id, "own", "try", sync=True)  # as if a sender died while sending 2

    again, engine2, calls2 = run_engine(tmp_path, {"own": []}, clock)
    assert engine2.step() == pytest.approx(1.0)  # the wait survived the restart
    clock[0] += 1
    assert engine2.step() is None
    assert calls2["own"] == [notice(1).id]  # 2 is not sent again: at most once
    counts = channel_tally(again.tally(), "own")
    assert (counts.sent, counts.unconfirmed) == (1, 1)


def test_how_a_kernel_died_is_said_only_as_far_as_it_is_known() -> None:
    kill = -signal.SIGKILL
    assert death(kill, 3, 4, "256 MiB") == (
        "kernel died: out of memory, the OOM killer ended it (memory cap 256 MiB)"
    )
    assert death(kill, 3, 3, None) == "kernel died: killed by SIGKILL"
    assert death(kill, None, None, None) == "kernel died: killed by SIGKILL"
    assert death(1, None, None, None) == "kernel died: exit status 1"
    assert death(None, None, None, None) == "kernel died"
    tb = [
        "\x1b[31m---\x1b[0m",
        "Cell In[1], line 1\n----> 1 1/0",
        "\x1b[31mZeroDivisionError\x1b[0m: division by zero",
    ]
    assert error_line({"traceback": tb}) == "ZeroDivisionError: division by zero"
    assert error_line({"ename": "KeyError", "evalue": "'x'"}) == "KeyError: 'x'"


def test_a_run_all_of_many_cells_is_one_run_and_an_error_is_kept_to_its_end() -> None:
    runs = Runs(grace=1.5)
    for n in range(10):  # queued cells: each starts within the grace of the one before
        runs.heard("execute_input", f"r{n}", {}, 100 + n)
        runs.heard("status", "r-other", {"execution_state": "idle"}, 100 + n)  # not its request
        assert runs.heard("status", f"r{n}", {"execution_state": "idle"}, 100.6 + n)
        assert runs.finish(101 + n, "nb.ipynb") is None  # the next cell may still come
    event = runs.finish(109.6 + 1.5, "nb.ipynb")
    assert event is not None and (event.what, event.subject) == ("10 cells finished", "nb.ipynb")
    assert event.seconds == pytest.approx(9.6) and runs.run is None

    runs.heard("execute_input", "x", {}, 200)
    runs.heard("error", "x", {"ename": "ValueError", "evalue": "bad shape"}, 201)
    runs.heard("status", "x", {"execution_state": "idle"}, 201)
    assert runs.finish(203, "").what == "cell failed: ValueError: bad shape"
