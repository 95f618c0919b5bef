"""Output keeping as the server sets it up: on by default, off by flag or site policy, never without the token."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import lab_outputs as lo
import psutil
import pytest
import websocket
from conftest import Member, kill_all

from labshare import probe
from labshare.server import outputs_keeper


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


@pytest.mark.timeout(180)
def test_a_kernels_first_run_gets_its_input_box(tmp_path: Path) -> None:
    """Server-side execution's kernel client has its stdin socket before its first run is sent.

    Without that, ZeroMQ dropped the kernel's input_request whenever the run
    got there before the socket's connection (2 in 10 first runs on a loaded
    2-core machine): `input()` then showed no box, and the cell never ended.
    """
    from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
    from jupyter_server_nbmodel.execution_stack import ExecutionStack

    assert outputs_keeper.open_stdin_with_client(), "jupyter-server-nbmodel no longer has _get_local_client"
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}

    async def until(answer: Callable[[], dict | None], what: str) -> dict:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if result := answer():
                return result
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out after 60 s waiting for {what}")

    async def first_run() -> None:
        kernels = AsyncMappingKernelManager(connection_dir=str(tmp_path), root_dir=str(tmp_path))
        kernel_id = await kernels.start_kernel(kernel_name="python3")
        stack = ExecutionStack(kernels, None)
        try:
            client = stack._get_local_client(kernel_id)
            assert client._stdin_channel is not None, "the stdin socket is opened only with the first run"
            uid = stack.put(kernel_id, "answer = input('name? ')\nprint('got', answer)")

            def asking() -> dict | None:
                answer = stack.get(kernel_id, uid)
                return answer if "input_request" in answer else None

            def finished() -> dict | None:
                answer = stack.get(kernel_id, uid)
                return None if answer.get("pending") else answer

            asked = await until(asking, "the kernel's input request")
            assert asked["input_request"]["prompt"] == "name? "
            await stack.send_input(kernel_id, "ada")
            done = await until(finished, "the run to end")
            assert done["status"] == "ok" and "got ada" in json.dumps(done["outputs"]), done
        finally:
            with contextlib.suppress(asyncio.CancelledError):  # nbmodel's dispose re-raises its workers' cancel
                await stack.dispose()
            await kernels.shutdown_all(now=True)

    try:
        asyncio.run(first_run())
    finally:
        kill_all([p for p in me.children(recursive=True) if p.pid not in before])
