"""What only a server itself knows: where it listens, whether it wants a token, and its sessions.

A labshare server's address is on its command line and its token in its
state folder; a hand-started one leaves them in Jupyter's own runtime file
(`jpserver-<pid>.json`) and config, found through its /proc environment.
Both the token and those files are readable only by the owner and root, so
secrets are looked for only when the caller may see them, and never leave
this module.  Every HTTP call has a short timeout: `ps` asks all servers in
parallel and must not hang on one that does not answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import psutil

from labshare import probe
from labshare.monitor import argv as cmd
from labshare.monitor.attribution import Found
from labshare.monitor.sampling import Proc
from labshare.server.records import read_records

HTTP_TIMEOUT = 1.0
_CONFIG_EMPTY_TOKEN = re.compile(
    r"""^\s*c\.(?:IdentityProvider|ServerApp|NotebookApp)\.token\s*=\s*(?:''|"")\s*(?:#.*)?$""",
    re.MULTILINE,
)


@dataclass
class Answer:
    """What asking one server told: its address, its token policy, and (with its token) its kernels."""

    port: int | None = None
    socket: str | None = None
    token_required: bool | None = None
    notes: list[str] = field(default_factory=list)
    sessions: dict[str, str] = field(default_factory=dict)
    kernel_info: dict[str, dict[str, Any]] = field(default_factory=dict)
    survived: dict[str, int] = field(default_factory=dict)
    prefix: str = ""  # the URL path a hub-spawned server serves under (/user/NAME)


def ask(server: Found, secrets: bool) -> Answer:
    """Ask `server`; `secrets` says whether the caller may read its token (the owner, or root)."""
    answer = Answer(token_required=server.token_required)
    if server.proc is None:
        return answer
    answer.socket = cmd.listen_socket(server.options)
    answer.port = cmd.listen_port(server.options)
    find_token = _hub_token if server.hub else _token
    token = find_token(server, server.proc, secrets, answer)
    if answer.socket is None and answer.port is None:
        answer.notes.append(
            "its port is not on its command line (only its owner or root can see it)"
        )
        return answer
    address = probe.Address(socket=answer.socket, port=answer.port)
    if not server.managed:
        with contextlib.suppress(OSError, ValueError):
            status = probe.request(address, "/api/status", timeout=HTTP_TIMEOUT).status
            if status == 200:
                answer.token_required = False
            elif status in (401, 403):
                answer.token_required = True
    if secrets and (token is not None or answer.token_required is False):
        _kernels(address, token, answer)
    return answer


def _token(server: Found, proc: Proc, secrets: bool, answer: Answer) -> str | None:
    """The server's token, where the caller may read it; fills in what the runtime file says on the way."""
    if not secrets:
        return None
    token: str | None = None
    if server.managed and server.state_dir is not None:
        with contextlib.suppress(OSError):
            token = (server.state_dir / "token").read_text().strip() or None
        answer.survived = {
            r.kernel_id: r.survived for r in read_records(server.state_dir / "kernels")
        }
    elif not server.managed:
        runtime = _runtime_info(proc)
        if runtime:
            answer.port = answer.port or runtime.get("port") or None
            answer.socket = answer.socket or runtime.get("sock") or None
            token = runtime.get("token") or None
        if answer.token_required is None and _config_says_no_token(proc):
            answer.token_required = False
    return token


def _hub_token(server: Found, proc: Proc, secrets: bool, answer: Answer) -> str | None:
    """A hub-spawned server's address and its own API token, from its environment (owner and root only).

    JupyterHub gives each server a token that may use that server's API
    (`access:servers!server`), so `ps` asks it as it asks a labshare server.
    """
    if not secrets:
        return None
    env = _environ(proc)
    answer.port = urlparse(env.get("JUPYTERHUB_SERVICE_URL", "")).port
    answer.prefix = env.get("JUPYTERHUB_SERVICE_PREFIX", "").rstrip("/")
    if server.state_dir is not None:
        answer.survived = {
            r.kernel_id: r.survived for r in read_records(server.state_dir / "kernels")
        }
    return env.get("JUPYTERHUB_API_TOKEN") or None


def _kernels(address: probe.Address, token: str | None, answer: Answer) -> None:
    """Which notebook each kernel runs, and the kernels' names and states, from the server's REST API."""
    with contextlib.suppress(OSError, ValueError):
        sessions = probe.request(
            address, f"{answer.prefix}/api/sessions", token=token, timeout=HTTP_TIMEOUT
        )
        if sessions.status == 200:
            for session in sessions.json() or []:
                kernel = session.get("kernel") or {}
                if kernel.get("id") and session.get("path"):
                    answer.sessions[kernel["id"]] = session["path"]
    with contextlib.suppress(OSError, ValueError):
        kernels = probe.request(
            address, f"{answer.prefix}/api/kernels", token=token, timeout=HTTP_TIMEOUT
        )
        if kernels.status == 200:
            answer.kernel_info = {k["id"]: k for k in kernels.json() or [] if k.get("id")}


def _environ(proc: Proc) -> dict[str, str]:
    try:
        return proc.handle.environ()
    except (psutil.Error, OSError):
        return {}


def _runtime_info(proc: Proc) -> dict[str, Any] | None:
    """The server's own `jpserver-<pid>.json` (port, socket, token), readable by its owner and root."""
    env = _environ(proc)
    home = env.get("HOME", "")
    candidates = [env.get("JUPYTER_RUNTIME_DIR", "")]
    if env.get("JUPYTER_DATA_DIR"):
        candidates.append(os.path.join(env["JUPYTER_DATA_DIR"], "runtime"))
    if env.get("XDG_DATA_HOME"):
        candidates.append(os.path.join(env["XDG_DATA_HOME"], "jupyter", "runtime"))
    if home:
        candidates.append(os.path.join(home, ".local", "share", "jupyter", "runtime"))
    for folder in filter(None, candidates):
        for name in (f"jpserver-{proc.pid}.json", f"nbserver-{proc.pid}.json"):
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(Path(folder, name).read_text())
                if isinstance(data, dict):
                    return data
    return None


def _config_says_no_token(proc: Proc) -> bool:
    """Whether the owner's Jupyter config sets an empty token (read only by the owner or root)."""
    env = _environ(proc)
    folder = env.get("JUPYTER_CONFIG_DIR") or (
        os.path.join(env["HOME"], ".jupyter") if env.get("HOME") else ""
    )
    if not folder:
        return False
    for app in ("jupyter_server_config", "jupyter_notebook_config"):
        with contextlib.suppress(OSError):
            if _CONFIG_EMPTY_TOKEN.search(Path(folder, f"{app}.py").read_text()):
                return True
        with contextlib.suppress(OSError, ValueError, AttributeError):
            data = json.loads(Path(folder, f"{app}.json").read_text())
            for section in ("IdentityProvider", "ServerApp", "NotebookApp"):
                if data.get(section, {}).get("token") == "":
                    return True
    return False
