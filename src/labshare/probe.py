"""Ask a Jupyter server whether it answers, over a Unix socket or TCP.

Shared by the server side (readiness, status, stop) and the laptop side
(through the tunnel).  A request here is one short HTTP/1.1 exchange with
`Connection: close`, written on a plain socket: `http.client` would pull in
the email and ssl packages and cost `labshare status` a quarter of its
time budget, for nothing these few local requests need.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from socket import socket as Socket  # the field `socket` below hides the module in the class
from typing import Any


@dataclass(frozen=True)
class Address:
    """Where a Jupyter server listens: a Unix socket path, or host and port."""

    socket: str | None = None
    port: int | None = None
    host: str = "127.0.0.1"

    def __str__(self) -> str:
        return self.socket if self.socket else f"{self.host}:{self.port}"

    def connect(self, timeout: float) -> Socket:
        if self.socket:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(self.socket)
            except OSError:
                sock.close()
                raise
            return sock
        return socket.create_connection((self.host, self.port or 0), timeout=timeout)


class Unanswered(ConnectionError):
    """The connection was taken, then closed (or reset) before a single byte came back.

    Jupyter always answers an HTTP request, so this is whatever stands in
    front of it giving up: through an ssh tunnel, sshd refusing the
    forwarded channel because nothing listens behind it any more.  Knowing
    it from the socket itself means `connect` never depends on what ssh
    prints, which a member's `LogLevel ERROR` or `QUIET` hides.
    """


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


def _dechunk(raw: bytes) -> bytes:
    out = bytearray()
    while raw:
        size_line, _, raw = raw.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += raw[:size]
        raw = raw[size + 2 :]
    return bytes(out)


def parse(raw: bytes) -> Response:
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if not sep or len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ConnectionError(f"not an HTTP response: {raw[:60]!r}")
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(body)
    return Response(int(parts[1]), headers, body)


def request(
    address: Address,
    path: str,
    *,
    token: str | None = None,
    method: str = "GET",
    timeout: float = 5.0,
    body: bytes | None = None,
) -> Response:
    """One HTTP request; raises OSError (ConnectionError included) when nothing answers there,
    `Unanswered` when the connection was taken but closed without a byte of answer."""
    host = "localhost" if address.socket else f"{address.host}:{address.port}"
    head = [
        f"{method} {path} HTTP/1.1",
        f"Host: {host}",
        "Connection: close",
        "User-Agent: labshare",
    ]
    if token:
        head.append(f"Authorization: token {token}")
    if body is not None or method in ("POST", "PUT", "PATCH"):
        head += ["Content-Type: application/json", f"Content-Length: {len(body or b'')}"]
    chunks: list[bytes] = []
    with address.connect(timeout) as sock:
        try:
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (body or b""))
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as exc:
            # A peer closing with our request unread resets rather than ends the connection.
            if not chunks:
                raise Unanswered(f"{address} closed the connection without answering") from exc
            raise
    if not chunks:
        raise Unanswered(f"{address} closed the connection without answering")
    return parse(b"".join(chunks))


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
