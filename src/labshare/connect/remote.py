"""labshare on the server, called over ssh: the only way the laptop side learns about the server.

`connect` never imports the server package; it runs `labshare info --json`
(or `start --json`) there and reads the JSON back.  `doctor HOST` calls the
server the same way, so when doctor finds labshare there, `connect` will too.
Finding labshare on the server is the remote script's job (ssh.py's
`remote_command`); saying what its absence or a failed login means is here
and in diagnose.py.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
from collections.abc import Generator
from pathlib import Path
from typing import Any, TypeVar

from labshare.connect import diagnose, tunnel
from labshare.connect import ssh as sshcmd
from labshare.connect.hosts import host_of
from labshare.errors import LabshareError, LabshareMissing, NotRunning
from labshare.proc import tail
from labshare.records import KnownServer, older
from labshare.records.info import ServerInfo

Event = dict[str, Any]
REMOTE_TIMEOUT = 120.0
START_TIMEOUT = 300.0
T = TypeVar("T")


def parse_json_output(stdout: str) -> dict[str, Any] | None:
    """The JSON document `labshare ... --json` printed, even after lines a login profile echoed."""
    decoder = json.JSONDecoder()
    for i, line in enumerate(stdout.splitlines(keepends=True)):
        if line.startswith("{"):
            rest = "".join(stdout.splitlines(keepends=True)[i:])
            with contextlib.suppress(ValueError):
                data, _ = decoder.raw_decode(rest)
                if isinstance(data, dict):
                    return data
    return None


def failure_of(done: subprocess.CompletedProcess[str]) -> tuple[str, str | None]:
    """Why `labshare ... --json` failed there, as one line and its detail.

    Under `--json` labshare prints its failure on stdout as one
    `{"error": {"message": ...}}` object; stderr only holds what went wrong
    before labshare could say anything (a crash, a shell's complaint).
    """
    data = parse_json_output(done.stdout)
    error = data.get("error") if data else None
    if (
        isinstance(error, dict)
        and isinstance(error.get("message"), str)
        and error["message"].strip()
    ):
        detail = error.get("detail")
        return " ".join(error["message"].split()), detail if isinstance(
            detail, str
        ) and detail else None
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    if not lines:
        return f"it exited with code {done.returncode} and said nothing", None
    return lines[-1].removeprefix("labshare: error: "), tail(done.stderr)


def forward_for(info: ServerInfo | KnownServer, local_port: int) -> sshcmd.Forward:
    """The forward from `local_port` here to where `labshare info` (or the memory of it) says the server listens."""
    if isinstance(info, ServerInfo) and info.mode == "tcp":
        return sshcmd.Forward(local_port, remote_port=int(info.port or 0))
    return sshcmd.Forward(local_port, remote_socket=str(info.socket))


def quietly(steps: Generator[Any, None, T]) -> T:
    """What a generator of progress events returns, for a caller with nobody to show them to."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


class Remote:
    """labshare on the server named by `plan`, through our ssh master when the plan has one."""

    def __init__(
        self,
        plan: sshcmd.Plan,
        labshare: str | None,
        config_file: Path,
        stop: threading.Event | None = None,
    ):
        self.plan = plan
        self.labshare = labshare
        self.config_file = config_file
        self.stop = stop
        self.destination = plan.target.destination
        self.host = host_of(self.destination)

    def argv(self, args: list[str]) -> list[str]:
        """The ssh command line that runs `labshare ARGS` there."""
        return self.plan.remote(sshcmd.remote_command(args, self.labshare))

    def run(
        self, args: list[str], timeout: float = REMOTE_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """`labshare ARGS` there, whatever its exit code; a failed login or a missing labshare raises."""
        done = tunnel.call(self.argv(args), timeout, self.host, self.stop)
        if done.returncode == 255:
            raise diagnose.classify_ssh_failure(done.stderr, self.destination)
        if done.returncode == sshcmd.NOT_FOUND_CODE and sshcmd.NOT_FOUND_MARK in done.stderr:
            raise self.missing()
        return done

    def missing(self) -> LabshareMissing:
        if self.labshare:
            return LabshareMissing(
                f"labshare was not found at {self.labshare} on {self.host} (set in {self.config_file}); "
                "fix that path or install labshare there."
            )
        from labshare.install_hint import REMOTE_INSTALL

        return LabshareMissing(
            f"labshare is not installed on {self.host} (not on PATH, in ~/.local/bin or in a login shell); "
            f"{REMOTE_INSTALL}, or tell "
            f'labshare where it is in {self.config_file} with [hosts.{self.host}] labshare = "/path/to/labshare".'
        )

    def info(self, timeout: float = REMOTE_TIMEOUT) -> ServerInfo:
        """What `labshare info --json` says there: running or not, where, the token.

        A server whose labshare answers in a format this one cannot read is
        one sentence naming both versions and which side to upgrade.
        """
        done = self.run(["info", "--json"], timeout=timeout)
        data = parse_json_output(done.stdout)
        if data is not None and "error" in data:
            reason, detail = failure_of(done)
            raise LabshareError(
                f"labshare on {self.host} could not say how JupyterLab is: {reason}", detail=detail
            )
        if data is None:
            raise LabshareError(
                f"labshare on {self.host} did not answer `info --json` as expected; "
                f"run `labshare info` there to see why, or update it.",
                detail=tail(done.stderr or done.stdout),
            )
        return ServerInfo.from_json(data, f"`labshare info --json` on {self.host}", remote=True)

    def server(self, start: bool) -> Generator[Event, None, ServerInfo]:
        """The running server's info, ready to connect to; with `start`, started first when it is not running.

        A generator so that the session can say `starting` before the seconds
        a start takes; `quietly` runs it for a caller with nobody to tell.
        """
        data = self.info()
        if not data.running:
            if not start:
                raise NotRunning(
                    f"JupyterLab is not running on {self.host}; start it with "
                    f"`labshare connect --start {self.destination}` (or `labshare start` there)."
                )
            yield {"event": "starting", "host": self.host}
            done = self.run(["start", "--json"], timeout=START_TIMEOUT)
            if done.returncode != 0:
                reason, detail = failure_of(done)
                raise LabshareError(
                    f"Starting JupyterLab on {self.host} failed: {reason}", detail=detail
                )
            data = self.info()
            if not data.running:
                raise LabshareError(
                    f"JupyterLab on {self.host} stopped right after starting; run `labshare logs` there to see why."
                )
            yield {"event": "started", "host": self.host, "mode": data.mode}
        if not data.token:
            raise older(
                f"`labshare info --json` on {self.host}", data.labshare, "no token", remote=True
            )
        if (data.mode == "socket" and not data.socket) or (data.mode == "tcp" and not data.port):
            raise older(
                f"`labshare info --json` on {self.host}", data.labshare, "no address", remote=True
            )
        return data
