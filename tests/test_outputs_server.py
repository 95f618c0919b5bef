"""Output keeping as the server sets it up: on by default, off by flag or site policy, never without the token."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import lab_outputs as lo
import psutil
import pytest
import websocket
from conftest import Member, kill_all, site_file

from labshare import probe


def test_collaboration_and_execution_endpoints_require_the_token(member: Member) -> None:
    server = lo.start_server(member)
    assert member.json("status")["keep_outputs"] is True
    address = probe.Address(host="127.0.0.1", port=server.port)
    body = json.dumps({"format": "json", "type": "notebook"}).encode()
    anonymous = [
        ("GET", "/api/labshare/outputs", None),
        ("PUT", "/api/collaboration/session/x.ipynb", body),
        ("POST", f"/api/kernels/{'0' * 8}-0000-0000-0000-{'0' * 12}/execute", b"{}"),
        ("GET", "/api/nbmodel/settings/output-recovery", None),
    ]
    for method, path, data in anonymous:
        answer = probe.request(address, path, method=method, body=data, timeout=10)
        assert answer.status == 403, f"{method} {path} answered {answer.status} without the token"
    try:
        ws = websocket.create_connection(
            f"ws://127.0.0.1:{server.port}/api/collaboration/room/JupyterLab:globalAwareness",
            timeout=10,
        )
    except websocket.WebSocketBadStatusException as refused:
        assert refused.status_code == 403
    else:
        ws.close()
        raise AssertionError("the collaboration websocket accepted a client without the token")
    assert server.api.ok("GET", "/api/labshare/outputs")["keep_outputs"] is True
    jupyter_cmdline = " ".join(Path(f"/proc/{server.pid}/cmdline").read_text().split("\0"))
    assert server.token not in jupyter_cmdline and "document_cleanup_delay=None" in jupyter_cmdline


def test_site_policy_turns_output_keeping_off_and_restart_keeps_it(member: Member) -> None:
    member.extra_env["LABSHARE_SITE_CONFIG"] = str(
        site_file(member.home, "[server]\nkeep_outputs = false\n")
    )
    server = lo.start_server(member)
    assert member.json("status")["keep_outputs"] is False
    report = json.loads(member.run("doctor", "--json", timeout=120).stdout)
    keeping = [c for c in report["checks"] if c["name"] == "output-keeping"]
    assert len(keeping) == 1 and keeping[0]["detail"].startswith("off"), keeping
    assert server.api.ok("GET", "/api/labshare/outputs")["keep_outputs"] is False
    member.run("restart", check=True)
    assert member.json("status")["keep_outputs"] is False
    member.run("stop", check=True)
    server = lo.start_server(member, "--keep-outputs")
    assert server.api.ok("GET", "/api/labshare/outputs")["keep_outputs"] is True


def test_a_bad_keep_outputs_value_is_one_clear_sentence(member: Member) -> None:
    member.extra_env["LABSHARE_SITE_CONFIG"] = str(
        site_file(member.home, '[server]\nkeep_outputs = "yes"\n')
    )
    done = member.run("start")
    assert done.returncode != 0
    assert (
        "server.keep_outputs: must be true or false" in done.stderr
        and "Traceback" not in done.stderr
    )


@pytest.mark.timeout(180)
def test_a_kernels_first_run_gets_its_input_box(tmp_path: Path) -> None:
    """Server-side execution's kernel client is ready for `input()` before its first run is sent.

    Without its stdin socket connected first, ZeroMQ dropped the kernel's
    input_request whenever the run got there before the connection (2 in 10
    first runs on a loaded 2-core machine): `input()` showed no box.  With a
    kernel slow to answer the handshake, its extra answers stayed queued and
    nbmodel never sent the typed answer (CI, 1 in 300 tests).  Either way
    the cell never ended.  Run in a fresh interpreter: ZeroMQ state left by
    earlier in-process kernel clients of the suite must not decide it.
    """
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    try:
        done = subprocess.run(
            [sys.executable, str(Path(__file__).with_name("nbmodel_first_run.py")), str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=150,
        )
    finally:
        kill_all([p for p in me.children(recursive=True) if p.pid not in before])
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "got ada", done.stdout + done.stderr


def test_output_keeping_switches_itself_off_once_when_a_part_it_uses_is_missing(
    member: Member,
) -> None:
    """As after an upgrade of jupyter-collaboration that renamed a method the sweep calls: one note, no loop.

    The member's own Jupyter config removes the method from the real
    collaboration room class; a cell run on the server side then changes a
    real document, so the sweep's periodic save meets the missing part.
    """
    from test_outputs_memory import _open_and_close

    (member.home / ".jupyter").mkdir()
    (member.home / ".jupyter/jupyter_server_config.py").write_text(
        "from jupyter_server_ydoc.rooms import DocumentRoom\ndel DocumentRoom._save_to_disc\n"
    )
    server = lo.start_server(member)
    path = lo.write_notebook(server.root, "renamed.ipynb", ["print('still kept')"])
    cell = json.loads(path.read_text())["cells"][0]["id"]
    room = _open_and_close(server, "renamed.ipynb")
    session = server.api.ok(
        "POST",
        "/api/sessions",
        {
            "path": "renamed.ipynb",
            "type": "notebook",
            "kernel": {"name": "python3"},
        },
    )
    run = server.api.call(
        "POST",
        f"/api/kernels/{session['kernel']['id']}/execute",
        {
            "code": "print('still kept')",
            "metadata": {"document_id": room, "cell_id": cell},
        },
    )
    assert run.status == 202, run.body
    state = lo.wait_for(
        lambda: (s := server.api.ok("GET", "/api/labshare/outputs"))["problem"] and s,
        60,
        "the sweep to switch itself off",
    )
    assert "_save_to_disc" in state["problem"] and "uv pip install" in state["problem"]
    assert (
        "'jupyter-server-ydoc<4,>=3.0.4'" in state["problem"]
    )  # the range jupyterside/internals.py was tested with
    log = member.run("logs", "-n", "2000").stdout
    assert log.count("output keeping's sweep switched itself off") == 1, log
    assert "sweep failed" not in log and "Traceback" not in log, log


# The member's own Jupyter config: a tab's websocket whose URL asks for it waits, between taking its room and
# joining it, until the keeper has freed that room: the moment a loaded server can hit by chance.
JOIN_AS_FREED = """
import asyncio
from jupyter_server_ydoc.handlers import YDocWebSocketHandler

_open = YDocWebSocketHandler.open

async def _late_open(self, *args, **kwargs):
    if self.get_query_argument("join_as_freed", ""):
        while self._websocket_server.room_exists(self._room_id):
            await asyncio.sleep(0.01)
    return await _open(self, *args, **kwargs)

YDocWebSocketHandler.open = _late_open
"""


def test_a_document_freed_while_a_tab_joins_it_still_loads(member: Member) -> None:
    """Lab's "The document is taking some time to load" on return, when the keeper freed the room a tab was joining.

    A tab's websocket takes its room in `prepare` and joins the room's
    clients only after `open`; a room freed in between left the tab on a
    deleted room that never synced.  labshare closes such a websocket with
    1012, so the tab (here the test, as Lab's provider does) connects again.
    """
    from test_outputs_memory import _open_and_close

    (member.home / ".jupyter").mkdir()
    (member.home / ".jupyter/jupyter_server_config.json").write_text(
        json.dumps({"OutputKeeper": {"free_after": 0.5, "tick": 0.1, "save_every": 0.1}})
    )
    (member.home / ".jupyter/jupyter_server_config.py").write_text(JOIN_AS_FREED)
    server = lo.start_server(member)
    lo.write_notebook(server.root, "back.ipynb", ["print('back')"])
    _open_and_close(server, "back.ipynb")
    _open_and_close(server, "back.ipynb", "&join_as_freed=1")
    state = server.api.ok("GET", "/api/labshare/outputs")
    assert state["freed"] >= 1, state
    log = member.run("logs", "-n", "500").stdout
    assert log.count("as it was freed; it connects again") == 1, log
    assert "Traceback" not in log, log
