"""A kernel's first server-side run asks for input(): run by tests/test_outputs_server.py in a fresh interpreter.

Uses jupyter-server-nbmodel's real ExecutionStack and a real kernel, with
labshare's wrap applied; prints what the cell printed after the answer.
The kernel is stopped for 2.5 s while the client connects, as a loaded
machine slows a new kernel's first answer: the handshake then asks again
and leaves its extra answers queued, which made nbmodel keep the answer to
input() to itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from jupyter_server_nbmodel.execution_stack import ExecutionStack

from labshare.jupyterside import execution_clients


async def until(answer: Callable[[], dict | None], what: str) -> dict:
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        if result := answer():
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after 45 s waiting for {what}")


async def first_run(where: str) -> str:
    kernels = AsyncMappingKernelManager(connection_dir=where, root_dir=where)
    kernel_id = await kernels.start_kernel(kernel_name="python3")
    stack = ExecutionStack(kernels, None)
    kernel_pid = kernels.get_kernel(kernel_id).provisioner.pid
    try:
        os.kill(kernel_pid, signal.SIGSTOP)
        asyncio.get_running_loop().call_later(2.5, os.kill, kernel_pid, signal.SIGCONT)
        # As the stack's worker makes it: the client, then the readiness handshake, before the first run.
        # (Made with _get_local_client alone, the handshake was skipped, and the run raced the sockets.)
        client = await stack._get_client(kernel_id)
        assert client._stdin_channel is not None, (
            "the stdin socket is opened only with the first run"
        )
        uid = stack.put(kernel_id, "answer = input('name? ')\nprint('got', answer)")

        def asking() -> dict | None:
            answer = stack.get(kernel_id, uid)
            return answer if "input_request" in answer else None

        def finished() -> dict | None:
            answer = stack.get(kernel_id, uid)
            return None if answer.get("pending") else answer

        asked = await until(asking, "the kernel's input request")
        assert asked["input_request"]["prompt"] == "name? ", asked
        await stack.send_input(kernel_id, "ada")
        done = await until(finished, "the run to end")
        assert done["status"] == "ok", done
        outputs = (
            json.loads(done["outputs"]) if isinstance(done["outputs"], str) else done["outputs"]
        )
        return "".join(out.get("text", "") for out in outputs if out.get("output_type") == "stream")
    finally:
        with contextlib.suppress(
            asyncio.CancelledError
        ):  # nbmodel's dispose re-raises its workers' cancel
            await stack.dispose()
        await kernels.shutdown_all(now=True)


if __name__ == "__main__":
    assert execution_clients.prepare_execution_clients(), (
        "jupyter-server-nbmodel no longer has the methods wrapped"
    )
    print(asyncio.run(first_run(sys.argv[1])).strip())
