"""Ask a Jupyter server whether it answers, over a Unix socket or TCP.

Shared by the server side (readiness, status, stop) and the laptop side
(through the tunnel).  Plain `http.client` keeps `labshare status` fast: no
Jupyter import, one request.
"""

from __future__ import annotations

import http.client
import json
import socket
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Address:
    """Where a Jupyter server listens: a Unix socket path, or host and port."""

    socket: str | None = None
    port: int | None = None
    host: str = "127.0.0.1"

    def __str__(self) -> str:
        return self.socket if self.socket else f"{self.host}:{self.port}"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


def request(
    address: Address,
    path: str,
    *,
    token: str | None = None,
    method: str = "GET",
    timeout: float = 5.0,
    body: bytes | None = None,
) -> Response:
    """One HTTP request; raises OSError when nothing listens there."""
    conn: http.client.HTTPConnection
    if address.socket:
        conn = _UnixConnection(address.socket, timeout)
    else:
        conn = http.client.HTTPConnection(address.host, address.port, timeout=timeout)
    headers = {"Authorization": f"token {token}"} if token else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return Response(resp.status, resp.read())
    except http.client.HTTPException as exc:
        raise ConnectionError(f"{address} did not answer HTTP: {exc}") from exc
    finally:
        conn.close()


def status(address: Address, token: str, timeout: float = 5.0) -> dict[str, Any] | None:
    """Jupyter's `/api/status` as a dict, or None if nothing answers with that token."""
    try:
        resp = request(address, "/api/status", token=token, timeout=timeout)
    except OSError:
        return None
    if resp.status != 200:
        return None
    try:
        data = resp.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
