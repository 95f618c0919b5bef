"""Real endpoints for apprise to send to: an HTTP receiver and an SMTP server, each a process on 127.0.0.1.

`python tests/notify_endpoints.py http PORT FILE` takes every POST (apprise's
`json://` and `ntfy://` send one each) and appends one JSON line to FILE:
the path and the body.  `... smtp PORT FILE` is aiosmtpd's real SMTP server,
appending each message's envelope and text.  A test starts one with
`Endpoint.start`, reads what came with `received`, and stops it (down) and
starts it again on the same port (up) to test retries.
"""

from __future__ import annotations

import contextlib
import email
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve()


def _append(path: Path, entry: dict) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(entry) + "\n").encode())
    finally:
        os.close(fd)


def serve_http(port: int, path: Path) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            _append(path, {"path": self.path, "body": body.decode(errors="replace")})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.allow_reuse_address = True
    print("ready", flush=True)
    server.serve_forever()


def serve_smtp(port: int, path: Path) -> None:
    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # aiosmtpd's hook
            _append(
                path,
                {
                    "from": envelope.mail_from,
                    "to": list(envelope.rcpt_tos),
                    "body": envelope.content.decode(errors="replace"),
                },
            )
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(3600)


def mail_text(raw: str) -> str:
    """A mail's plain-text part, decoded (apprise sends quoted-printable)."""
    message = email.message_from_string(raw)
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            return payload.decode(errors="replace").strip() if isinstance(payload, bytes) else ""
    return raw


@dataclass
class Endpoint:
    """One receiver process; `received()` is everything it took, in order."""

    kind: str
    port: int
    log: Path
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> Endpoint:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE), self.kind, str(self.port), str(self.log)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", f"the {self.kind} endpoint did not start"
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(30)
            self.proc = None

    def received(self) -> list[dict]:
        try:
            return [json.loads(line) for line in self.log.read_text().splitlines() if line]
        except FileNotFoundError:
            return []

    def messages(self) -> list[str]:
        """Each notice's text: the `message` apprise's json:// sends, or a mail's body."""
        out = []
        for entry in self.received():
            body = entry["body"]
            if self.kind == "http":
                with contextlib.suppress(ValueError):
                    data = json.loads(body)
                    body = data.get("message", body) if isinstance(data, dict) else body
            else:
                body = mail_text(body)
            out.append(body)
        return out


if __name__ == "__main__":
    kind, port, where = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    (serve_http if kind == "http" else serve_smtp)(port, where)
