"""The ssh processes one `connect` runs, and whether the tunnel they hold answers.

Two kinds: short calls (a remote `labshare`, `ssh -O forward`), run by `call`
so that a Ctrl-C ends them at once and nothing outlives the call whatever way
it returns; and the one long-lived ssh holding the forward (our master, or a
plain `ssh -N -L`), kept by a `Keeper` that reads its stderr for diagnosis.
`Tunnel` opens, re-opens and closes the forward on either and says whether
JupyterLab answers through it with our token.  A tunnel only ever ends ssh
processes it started, so a Ctrl-C leaves the server running.
"""

from __future__ import annotations

import collections
import contextlib
import os
import subprocess
import threading
import time

from labshare import probe, proc
from labshare.connect import diagnose, dial
from labshare.connect import ssh as sshcmd
from labshare.connect.hosts import host_of
from labshare.errors import HostUnreachable, LabshareError

PROBE_TIMEOUT = 3.0
MASTER_TIMEOUT = 30.0


class Stopped(Exception):
    """The user asked us to stop (Ctrl-C, SIGTERM); unwinds to the cleanup."""


class ChannelRefused(Exception):
    """sshd refused to open the forwarded connection: forwarding disabled, or the server gone."""


class Stale(Exception):
    """Something answered through the tunnel, but not with 200 for our token: another server now."""


class NoAnswer(HostUnreachable):
    """An ssh call ran out of time; its own kind so `doctor` can say where it may hang."""


def check_stop(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise Stopped()


def call(
    argv: list[str], timeout: float, host: str, stop: threading.Event | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a short ssh command and return what it printed, whatever its exit code.

    Raises Stopped once `stop` is set and NoAnswer past `timeout`; the ssh is
    killed in either case.
    """
    child = proc.start(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                out, err = child.communicate(timeout=0.1)
                return subprocess.CompletedProcess(argv, child.returncode, out, err)
            except subprocess.TimeoutExpired:
                if (stop is not None and stop.is_set()) or time.monotonic() > deadline:
                    break
        child.kill()
        child.communicate()
        check_stop(stop)
        raise NoAnswer(f"The server {host} did not answer within {timeout:.0f} s; try again.")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def free_local_port(requested: int | None) -> int:
    """`requested` if nothing on this laptop holds it, else a clear error; a free port when None."""
    port = dial.bind_local(requested)
    if port is None:
        raise diagnose.local_port_taken(requested)
    return port


def answer(local_port: int, token: str, timeout: float = PROBE_TIMEOUT) -> int | None:
    """The HTTP status `/api/status` gives `token` through the tunnel; None when nothing answers yet.

    Raises ChannelRefused when ssh took the connection and closed it without
    a byte: that is what it does when sshd refuses the forwarded channel, so
    the refusal is known from the socket, whatever ssh prints (or, under the
    member's `LogLevel ERROR` or `QUIET`, does not print).
    """
    address = probe.Address(host="127.0.0.1", port=local_port)
    try:
        return probe.request(address, "/api/status", token=token, timeout=timeout).status
    except probe.Unanswered:
        raise ChannelRefused() from None
    except (OSError, ValueError):
        return None


class Keeper:
    """A long-lived ssh process, with its stderr kept (last lines) for diagnosis."""

    def __init__(self, child: subprocess.Popen[str]):
        self.lines: collections.deque[str] = collections.deque(maxlen=200)
        self.proc = child
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def text(self) -> str:
        if not self.alive:
            self._reader.join(timeout=0.5)
        return "\n".join(self.lines)

    def end(self) -> None:
        dial.stop(self.proc)


class Tunnel:
    """127.0.0.1:<local> here to the server's JupyterLab, held by our master or a plain `ssh -N -L`."""

    def __init__(self, plan: sshcmd.Plan, stop: threading.Event):
        self.plan = plan
        self.destination = plan.target.destination
        self.host = host_of(self.destination)
        self.stop = stop
        self.forward: sshcmd.Forward | None = None
        self.token = ""
        self._keeper: Keeper | None = None
        self._borrowed: sshcmd.Forward | None = None

    @property
    def alive(self) -> bool:
        if self._keeper is not None and self._keeper.alive:
            return True
        return self._borrowed is not None

    @property
    def exit_status(self) -> str:
        """ssh's exit code, for the `reconnecting` reason."""
        code = self._keeper.proc.returncode if self._keeper else None
        return "?" if code is None else str(code)

    def adopt(self, dialed: dial.Dialed, forward: sshcmd.Forward, token: str) -> bool:
        """Take the early ssh when it is exactly the master this tunnel would start, and wait for its login."""
        if not self.plan.multiplexed or self.plan.master(forward) != dialed.argv:
            return False
        self.forward, self.token = forward, token
        self._await_master(Keeper(dialed.proc), wait_forever=True)
        return True

    def start_master(self, wait_forever: bool, forward: sshcmd.Forward | None = None) -> None:
        """Start our `ssh -M -N` (holding `forward` from the start, if given) and wait for its control socket.

        `wait_forever` is for the first connection, where the member may be
        answering a password or 2FA prompt; a reconnect gives up in time.
        """
        assert self.plan.control_path
        argv = self.plan.master(forward)
        self._await_master(Keeper(dial.spawn(argv, str(self.plan.control_path))), wait_forever)

    def _await_master(self, keeper: Keeper, wait_forever: bool) -> None:
        """Until the master's control socket appears: it is then logged in (and holds its forward)."""
        assert self.plan.control_path
        self._keeper = keeper
        deadline = time.monotonic() + MASTER_TIMEOUT
        while not self.plan.control_path.exists():
            check_stop(self.stop)
            if not keeper.alive:
                raise self._failure(keeper.text())
            if not wait_forever and time.monotonic() > deadline:
                keeper.end()
                raise HostUnreachable(
                    f"ssh to {self.destination} did not connect within {MASTER_TIMEOUT:.0f} s."
                )
            self.stop.wait(0.002)  # a stat per wait; ready sooner

    def open(self, forward: sshcmd.Forward, token: str, wait_forever: bool = False) -> None:
        """Add the forward to our master (starting it with the forward when there is none yet), or start
        the plain `ssh -N -L` process."""
        self.forward, self.token = forward, token
        if self.plan.multiplexed:
            if not self.alive:
                self.start_master(wait_forever, forward=forward)
                return
            done = call(self.plan.add_forward(forward), 30, self.host, self.stop)
            if done.returncode != 0:
                raise self._failure(done.stderr)
            return
        self._keeper = keeper = Keeper(dial.spawn(self.plan.tunnel(forward)))
        self._borrowed = None
        deadline = time.monotonic() + 1.0
        while keeper.alive and time.monotonic() < deadline and not self.answers(timeout=0.5):
            self.stop.wait(0.05)
        if not keeper.alive:
            if keeper.proc.returncode == 0:
                self._borrowed = forward  # the user's own ControlMaster now holds the forward
                return
            raise self._failure(keeper.text())

    def reopen(self) -> None:
        """The same forward again, after its ssh died or froze."""
        assert self.forward
        self.drop()
        self.open(self.forward, self.token)

    def answers(self, timeout: float = PROBE_TIMEOUT) -> bool:
        try:
            return self.probe(timeout)
        except ChannelRefused:
            return False

    def probe(self, timeout: float = PROBE_TIMEOUT) -> bool:
        """Whether the Lab answers 200 now; ChannelRefused when nothing listens behind the tunnel."""
        assert self.forward
        return answer(self.forward.local_port, self.token, timeout) == 200

    def wait_ready(self, timeout: float) -> None:
        """Until `/api/status` answers 200 through the tunnel with the token."""
        assert self.forward
        deadline = time.monotonic() + timeout
        while True:
            check_stop(self.stop)
            if not self.alive:
                assert self._keeper is not None
                raise self._failure(self._keeper.text())
            status = answer(self.forward.local_port, self.token, timeout=2.0)
            if status == 200:
                return
            if status is not None:
                raise Stale()
            if time.monotonic() > deadline:
                raise HostUnreachable(
                    f"JupyterLab on {self.host} did not answer through the tunnel within {timeout:.0f} s; "
                    "run `labshare status` there and try again."
                )
            self.stop.wait(0.01)

    def _failure(self, stderr: str) -> LabshareError:
        return diagnose.tunnel_failure(
            stderr, self.destination, self.forward.local_port if self.forward else None
        )

    def close(self) -> None:
        """Take down the forward but keep our master, so a 2FA prompt is not asked again."""
        assert self.forward
        if self.plan.multiplexed and self._keeper is not None and self._keeper.alive:
            call(self.plan.cancel_forward(self.forward), 30, self.host, self.stop)
        else:
            self.drop()
        self.forward = None

    def drop(self) -> None:
        """End the ssh holding the forward; a forward lent to the user's own master is cancelled there."""
        if self._borrowed is not None:
            with contextlib.suppress(LabshareError):
                call(self.plan.cancel_forward(self._borrowed), 10, self.host)
            self._borrowed = None
        if self._keeper is not None:
            self._keeper.end()
            self._keeper = None

    def end(self) -> None:
        """End every ssh this tunnel started, and its control socket; the server itself keeps running."""
        self.drop()
        if self.plan.control_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.plan.control_path)
