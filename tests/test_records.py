"""Every JSON document labshare writes or exchanges is a typed record: it round-trips, and an old,
newer or corrupt one is read with defaults or said in one line, never a KeyError or a traceback.

Pure tests, as any user: the records themselves, their store, and the laptop's reading of a
server's `info --json` through a `Remote` whose ssh is a plain function.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import Member

from labshare import __version__
from labshare.connect import ssh as sshcmd
from labshare.connect.remote import Remote
from labshare.records import KnownServer, RecordError, TooNew
from labshare.records.base import Record
from labshare.records.gpu_leases import LeaseRecord, Notice, Reclaimed, ReclaimWarnings
from labshare.records.info import ServerInfo
from labshare.records.port_claim import PortClaim
from labshare.records.server import KernelRecord, LaunchSpec, ServerState
from labshare.records.store import Corrupt, Store

STATE = ServerState(
    supervisor_pid=10,
    supervisor_started=1.5,
    mode="socket",
    root_dir="/home/a/projects",
    socket="/run/a.sock",
    port=None,
    started_at="2026-12-07T10:00:00+00:00",
    pid=11,
    limits={"memory_max": "8G"},
)
RECORDS: list[Record] = [
    STATE,
    LaunchSpec(
        argv=("python", "-m", "labshare.jupyterside.lab"),
        cwd="/home/a",
        log_file="/x/log",
        runtime_dir="/x/runtime",
        socket=None,
    ),
    KernelRecord(
        kernel_id="k1",
        pid=12,
        pgid=12,
        started=3.25,
        connection_info={"key": "abc", "shell_port": 1},
        survived=2,
    ),
    LeaseRecord(
        card="GPU-1",
        mode="exclusive",
        user="a",
        uid=1000,
        pid=12,
        pid_start=9.5,
        boot_time=1.0,
        boot_id="b",
        since=7.0,
        kernel_id="k1",
    ),
    Reclaimed(
        user="a",
        kernel_id="k1",
        notebook="x.ipynb",
        cards=("GPU-1",),
        idle_seconds=60,
        memory_bytes=2**30,
        at=8.0,
    ),
    ReclaimWarnings(due=(Notice(kernel_id="k1", cards=("GPU-1", "GPU-2"), at=9.0),)),
    PortClaim(port=20001, user="a"),
    ServerInfo(
        running=True,
        mode="socket",
        socket="/run/a.sock",
        token="t0k",
        user="a",
        host="gpu1",
        surviving_kernels=({"id": "k1", "pid": 12},),
        notes=("a note",),
        labshare=__version__,
    ),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
@pytest.mark.quick
def test_every_record_round_trips_through_json(record: Record) -> None:
    data = json.loads(json.dumps(record.to_json()))
    assert data["version"] == record.VERSION and data["labshare"] == __version__
    assert type(record).from_json(data, "a test") == record


def test_the_remembered_server_round_trips_and_stays_light() -> None:
    known = KnownServer(
        mode="socket",
        socket="/s",
        token="t",
        user="a",
        host="gpu1",
        local_port=8888,
        own_master=True,
    )
    assert KnownServer.from_json(json.loads(json.dumps(known.to_json())), "a test") == known
    assert known.rememberable
    code = (
        "import sys, labshare.records; print(sorted({'dataclasses', 'typing'} & set(sys.modules)))"
    )
    done = subprocess.run(
        [__import__("sys").executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", "connect's early path must not import dataclasses or typing"


@pytest.mark.quick
def test_an_older_record_is_read_with_defaults() -> None:
    """Format 1 is the JSON of labshare before records: no version, ServerState's `schema`, bare warnings."""
    old = {
        k: v
        for k, v in STATE.to_json().items()
        if k not in ("version", "labshare", "limits", "restarts")
    }
    assert ServerState.from_json({**old, "schema": 1}, "a test") == ServerState(
        **{**STATE.__dict__, "limits": {}}
    )
    warnings = ReclaimWarnings.from_json(
        {"k1": {"kernel_id": "k1", "cards": ["GPU-1"], "at": 9.0}}, "a test"
    )
    assert warnings.due == (Notice(kernel_id="k1", cards=("GPU-1",), at=9.0),)
    info = ServerInfo.from_json(
        {"running": True, "mode": "tcp", "port": 8888, "token": "t"}, "a test"
    )
    assert (info.port, info.labshare, info.notes) == (8888, None, ())


@pytest.mark.quick
def test_a_newer_record_is_one_sentence_naming_both_versions() -> None:
    with pytest.raises(TooNew) as caught:
        ServerState.from_json(
            {**STATE.to_json(), "version": 99, "labshare": "7.0.0"}, "the state file /x/server.json"
        )
    message = str(caught.value)
    assert "\n" not in message and message.count(". ") == 0
    assert "/x/server.json is in format 99" in message and "labshare 7.0.0" in message
    assert f"labshare {__version__} here" in message and "scripts/install --upgrade" in message


@pytest.mark.quick
def test_a_record_missing_what_it_needs_names_the_field() -> None:
    with pytest.raises(RecordError, match=r"no valid 'supervisor_pid'.*cannot read"):
        ServerState.from_json({"mode": "socket"}, "the state file /x/server.json")
    with pytest.raises(RecordError, match=r"no valid 'pid'"):
        LeaseRecord.from_json({**RECORDS[3].to_json(), "pid": True}, "a lease")


@pytest.mark.quick
def test_a_corrupt_file_is_kept_aside_with_one_line(tmp_path: Path) -> None:
    store = Store(tmp_path / "server.json", ServerState, "the state file")
    (tmp_path / "server.json").write_text("{not json")
    with pytest.raises(Corrupt) as caught:
        store.read()
    (aside,) = tmp_path.glob("server.json.corrupt-*")
    assert (
        str(caught.value)
        == f"server.json was unreadable; kept as {aside}: run the command again to start afresh."
    )
    assert store.read() is None
    store.write(STATE)
    assert store.read() == STATE and (tmp_path / "server.json").stat().st_mode & 0o777 == 0o600

    (tmp_path / "server.json").write_text("{still not json")  # again within the same second
    with pytest.raises(Corrupt):
        store.read()
    kept = sorted(p.read_text() for p in tmp_path.glob("server.json.corrupt-*"))
    assert kept == ["{not json", "{still not json"], (
        "a second corrupt file replaced the first one kept"
    )


@pytest.mark.quick
def test_a_corrupt_file_another_reader_set_aside_first_is_one_line(tmp_path: Path) -> None:
    store = Store(tmp_path / "server.json", ServerState, "the state file")
    assert "has been set aside" in str(
        store.set_aside()
    )  # nothing there: moved by the other reader


@pytest.mark.quick
def test_a_newer_file_is_left_in_place_for_the_labshare_that_wrote_it(tmp_path: Path) -> None:
    path = tmp_path / "server.json"
    path.write_text(json.dumps({**STATE.to_json(), "version": 3}))
    with pytest.raises(TooNew):
        Store(path, ServerState, "the state file").read()
    assert path.exists() and not list(tmp_path.glob("*.corrupt-*"))


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ("{not json", "server.json was unreadable; kept as"),
        (
            '{"version": 99, "labshare": "7.0.0", "pid": 1}',
            "is in format 99, written by labshare 7.0.0",
        ),
    ],
)
def test_status_says_a_corrupt_or_newer_state_file_in_one_line(
    member: Member, content: str, said: str
) -> None:
    member.state_dir.mkdir(parents=True)
    (member.state_dir / "server.json").write_text(content)
    done = member.run("status")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("labshare: error: ") and said in line


def remote_answering(stdout: str) -> Remote:
    """A Remote whose `labshare ...` over ssh is this function: it prints `stdout` and exits 0."""

    class Answering(Remote):
        def run(self, args: list[str], timeout: float = 0) -> subprocess.CompletedProcess[str]:
            return subprocess.CompletedProcess(["ssh", *args], 0, stdout, "")

    return Answering(sshcmd.Plan(sshcmd.Target("gpu1")), None, Path("/nowhere/config.toml"))


@pytest.mark.quick
def test_a_laptop_older_than_its_server_says_so_in_one_sentence() -> None:
    answer = {**RECORDS[-1].to_json(), "version": 3, "labshare": "0.9.0"}
    with pytest.raises(TooNew) as caught:
        remote_answering(json.dumps(answer)).info()
    message = str(caught.value)
    assert "`labshare info --json` on gpu1 is in format 3, written by labshare 0.9.0" in message
    assert f"labshare {__version__} here" in message and "upgrade labshare here" in message


@pytest.mark.quick
def test_a_server_older_than_its_laptop_says_so_in_one_sentence() -> None:
    """An answer this labshare cannot use (here: no token) names the server's version and its upgrade."""
    answer = {"running": True, "mode": "socket", "socket": "/s", "version": 2, "labshare": "0.0.9"}
    remote = remote_answering(json.dumps(answer))
    with pytest.raises(RecordError) as caught:
        next(remote.server(start=False))
    message = str(caught.value)
    assert (
        "comes from labshare 0.0.9" in message
        and f"labshare {__version__} here cannot read" in message
    )
    assert (
        "upgrade labshare there: run `sh scripts/install --upgrade` in the labshare checkout there"
        in message
    )
    assert "\n" not in message
