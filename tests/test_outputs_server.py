"""Output keeping as the server sets it up: on by default, off by flag or site policy, never without the token."""

from __future__ import annotations

import json
from pathlib import Path

import lab_outputs as lo
import websocket
from conftest import Member

from labshare import probe


def _site(where: Path, text: str) -> Path:
    path = where / "site.toml"
    path.write_text(text)
    return path


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
            f"ws://127.0.0.1:{server.port}/api/collaboration/room/JupyterLab:globalAwareness", timeout=10
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
    member.extra_env["LABSHARE_SITE_CONFIG"] = str(_site(member.home, "[server]\nkeep_outputs = false\n"))
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
    member.extra_env["LABSHARE_SITE_CONFIG"] = str(_site(member.home, '[server]\nkeep_outputs = "yes"\n'))
    done = member.run("start")
    assert done.returncode != 0
    assert "server.keep_outputs: must be true or false" in done.stderr and "Traceback" not in done.stderr
