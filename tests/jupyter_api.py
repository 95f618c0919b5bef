"""A tiny Jupyter REST + kernel-websocket client for tests, over a Unix socket or TCP.

Tests check what a member would see: a kernel started through the server's
API runs code and keeps its variables.
"""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import websocket

from labshare import probe

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def plain(output: str) -> str:
    """Cell output without colours: uv colours what it prints for a notebook, which Lab shows as colour."""
    return _ANSI.sub("", output)


@dataclass
class Lab:
    address: probe.Address
    token: str | None
    prefix: str = ""  # e.g. "/user/alice" for a server behind JupyterHub's proxy

    @classmethod
    def from_url(cls, url: str) -> Lab:
        parts = urlparse(url)
        token = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p).get("token")
        return cls(probe.Address(host=parts.hostname or "127.0.0.1", port=parts.port), token)

    def call(self, method: str, path: str, body: Any = None, token: bool = True) -> probe.Response:
        data = json.dumps(body).encode() if body is not None else None
        return probe.request(
            self.address,
            self.prefix + path,
            token=self.token if token else None,
            method=method,
            body=data,
            timeout=30,
        )

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        resp = self.call(method, path, body)
        assert resp.status < 300, f"{method} {path} -> {resp.status}: {resp.body[:300]!r}"
        return resp.json()

    def start_kernel(self, name: str | None = None) -> str:
        return self.ok("POST", "/api/kernels", {"name": name} if name else {})["id"]

    def _socket(self) -> socket.socket:
        if self.address.socket:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(self.address.socket)
        else:
            sock = socket.create_connection((self.address.host, self.address.port))
        return sock

    def execute(self, kernel_id: str, code: str, timeout: float = 60) -> str:
        """Run `code` in the kernel; return its stdout and result text, raise on an error or an abort.

        Returns (or raises) only once the request is over, its reply and the
        kernel's idle both seen: a kernel aborts every execute request that
        reaches it before it has finished with one that failed.
        """
        host = "localhost" if self.address.socket else f"{self.address.host}:{self.address.port}"
        ws = websocket.create_connection(
            f"ws://{host}{self.prefix}/api/kernels/{kernel_id}/channels",
            socket=self._socket(),
            header=[f"Authorization: token {self.token}"],
            timeout=timeout,
        )
        try:
            msg_id = uuid.uuid4().hex
            ws.send(
                json.dumps(
                    {
                        "header": {
                            "msg_id": msg_id,
                            "msg_type": "execute_request",
                            "username": "test",
                            "session": uuid.uuid4().hex,
                            "version": "5.3",
                        },
                        "parent_header": {},
                        "metadata": {},
                        "channel": "shell",
                        "buffers": [],
                        "content": {
                            "code": code,
                            "silent": False,
                            "store_history": True,
                            "user_expressions": {},
                            "allow_stdin": False,
                            "stop_on_error": True,
                        },
                    }
                )
            )
            out: list[str] = []
            error = reply = None
            idle = False
            deadline = time.monotonic() + timeout
            while not (idle and reply) and time.monotonic() < deadline:
                msg = json.loads(ws.recv())
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = msg["msg_type"], msg["content"]
                if kind == "stream":
                    out.append(content["text"])
                elif kind in ("execute_result", "display_data"):
                    out.append(content["data"].get("text/plain", "") + "\n")
                elif kind == "error":
                    error = f"kernel error: {content['ename']}: {content['evalue']}"
                elif kind == "execute_reply":
                    reply = content
                elif kind == "status" and content["execution_state"] == "idle":
                    idle = True
            if not (idle and reply):
                raise TimeoutError(f"no reply to {code!r} within {timeout} s")
            if error or reply["status"] != "ok":
                raise AssertionError(
                    error or f"the kernel answered {reply['status']!r} to {code!r}"
                )
            return "".join(out)
        finally:
            ws.close()
