"""Inside Jupyter: which notebook a kernel belongs to.

The cell notices, the GPU reclaim and output keeping each need a kernel's
notebook.  `get_session(kernel_id=...)` reads that one session's row;
`list_sessions()`, which each of them used to walk, builds the model of
every session's kernel (and drops the rows of kernels that ended) to find
one path.
"""

from __future__ import annotations

from typing import Any


async def notebook_of(serverapp: Any, kernel_id: str) -> str | None:
    """The path of the kernel's session; None for a kernel with none (a console) or one ending now."""
    try:
        session = await serverapp.session_manager.get_session(kernel_id=kernel_id)
    except Exception:  # a 404 (no session) or a KeyError (its kernel has just ended)
        return None
    return str(session.get("path")) if session else None
