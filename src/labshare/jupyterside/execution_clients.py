"""Make server-side execution's kernel clients answer a first run's `input()` on a busy server.

jupyter-server-nbmodel 0.2.9 makes a kernel's client on the kernel's first
run, and two races there lost the answer to `input()` for good, so the cell
never ended:

- jupyter_client opens a client's stdin socket only in the call that sends
  the run, and ZeroMQ drops an `input_request` addressed to a peer whose
  connection is not complete.  Opened with the client, the socket connects
  during the client's own kernel_info handshake.
- That handshake (`wait_for_ready`) asks the kernel again every second until
  one answer comes, so a kernel slow to answer its first kernel_info leaves
  the later answers queued on the shell socket.  nbmodel sends an answer to
  `input()` only when nothing waits on that socket (a waiting message would
  mean the run already ended), so it never sent it.  One more kernel_info,
  read up to its own reply, empties the queue: a kernel answers shell
  requests in the order they came.

Wraps nbmodel's client making through `internals.wrap_execution_clients`;
tests/nbmodel_first_run.py fails if an upgrade changes it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from queue import Empty
from typing import Any

from jupyter_core.utils import ensure_async

from labshare.jupyterside import internals

SETTLE_SECONDS = 30.0
log = logging.getLogger(__name__)


def prepare_execution_clients() -> bool:
    """Have nbmodel's new clients open stdin at once and start with an empty shell queue; False when it changed."""
    return internals.wrap_execution_clients(_open_stdin, _settled)


def _open_stdin(client: Any) -> None:
    client.stdin_channel  # noqa: B018  (the property opens and connects the socket)


async def _settled(client: Any) -> None:
    """Empty the client's shell queue once, however many callers ask for the new client at once."""
    settling = getattr(client, "_labshare_settling", None)
    if settling is None:
        settling = client._labshare_settling = asyncio.ensure_future(_drain_shell(client))
    await asyncio.shield(settling)


async def _drain_shell(client: Any) -> None:
    """Best effort: a client that cannot be drained is handed over as nbmodel made it, never broken."""
    try:
        asked = client.kernel_info()
        deadline = time.monotonic() + SETTLE_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            reply = await ensure_async(client.shell_channel.get_msg(timeout=left))
            if reply.get("parent_header", {}).get("msg_id") == asked:
                return
    except Empty:
        return
    except Exception:  # a closed channel, a kernel gone meanwhile: the run itself will say so
        log.warning("labshare: could not empty a new kernel client's shell queue", exc_info=True)
