"""One `labshare connect` from start to Ctrl-C: ask, tunnel, wait, open, heal, close.

`Session.events()` is a generator of plain event dicts (`ready`, `reconnecting`,
`reconnected`, `closed`, ...); the CLI prints them, nothing here does.  This
module decides *when*: whether the remembered server (known.py) still
answers, when to ask the server again (remote.py), when a dead or frozen
tunnel (tunnel.py) is healed and when a failure is final.  Only portable
calls are used (Popen.terminate/kill, threading), because the same code runs
on Windows with its built-in OpenSSH.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass

from labshare.connect import dial, hosts, known
from labshare.connect import ssh as sshcmd
from labshare.connect.diagnose import forwarding_refused
from labshare.connect.remote import Event, Remote, forward_for, quietly
from labshare.connect.tunnel import ChannelRefused, Stale, Stopped, Tunnel, free_local_port
from labshare.errors import FINAL, HostUnreachable, LabshareError, LocalPortTaken, NotRunning
from labshare.paths import Paths
from labshare.records.info import ServerInfo

READY_TIMEOUT = 60.0
HEAL_READY_TIMEOUT = 8.0
PROBE_EVERY = 5.0
PROBE_FAILURES = 2
BACKOFF = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)


def _open_browser(url: str) -> bool:
    import webbrowser  # only when a browser is opened: it is slow to import

    return webbrowser.open(url)


@dataclass(frozen=True)
class Options:
    """What the user asked for on the command line."""

    destination: str
    local_port: int | None = None
    start: bool = False
    open_browser: bool = True
    ssh_options: tuple[str, ...] = ()


class ServerGone(Exception):
    """The tunnel works but nothing listens behind it: the server stopped."""


class Session:
    """A tunnel from 127.0.0.1:<local> on this computer to the member's JupyterLab on the server."""

    def __init__(self, paths: Paths, options: Options, opener: Callable[[str], bool] | None = None):
        self.paths = paths
        self.options = options
        self.opener = opener or _open_browser
        self.host = hosts.host_of(options.destination)
        self.settings = hosts.load(paths.user_config_file, options.destination)
        self.target = sshcmd.Target(options.destination, tuple(options.ssh_options))
        self.memory = known.Memory(str(paths.state_root), options.destination, self.target.options)
        self._stop = threading.Event()
        self._stop_reason = "interrupted"
        self.tunnel: Tunnel | None = None
        self.remote: Remote | None = None
        self.info = ServerInfo()

    def stop(self, reason: str = "interrupted") -> None:
        """Ask the session to end; safe from a signal handler or another thread."""
        self._stop_reason = reason
        self._stop.set()

    def events(self) -> Iterator[Event]:
        """Connect, report `ready`, keep the tunnel up until stopped, then report `closed`."""
        try:
            yield {
                "event": "connecting",
                "host": self.host,
                "destination": self.options.destination,
                "login_started": dial.pending(),
            }
            self._check_stop()
            plan = sshcmd.plan(self.paths, self.target)
            for note in plan.notes:
                yield {"event": "note", "host": self.host, "message": note}
            self.tunnel = Tunnel(plan, self._stop)
            self.remote = Remote(
                plan, self.settings.labshare, self.paths.user_config_file, self._stop
            )
            yield from self._connect()
            yield from self._watch()
        except Stopped:
            pass
        finally:
            if self.tunnel is not None:
                self.tunnel.end()
        forward = self.tunnel.forward if self.tunnel else None
        yield {
            "event": "closed",
            "host": self.host,
            "reason": self._stop_reason,
            "local_port": forward.local_port if forward else None,
        }

    def url(self, with_token: bool) -> str:
        assert self.tunnel and self.tunnel.forward
        base = f"http://127.0.0.1:{self.tunnel.forward.local_port}/lab"
        return f"{base}?token={self.info.token}" if with_token else base

    # -- connecting -----------------------------------------------------------------------

    def _connect(self) -> Iterator[Event]:
        """The remembered server if it answers, else the one the server describes now; then `ready`."""
        assert self.tunnel and self.remote
        requested = self.options.local_port or self.settings.local_port
        if not self._remembered_works(requested):
            local_port = free_local_port(requested)
            if self.tunnel.plan.multiplexed and not self.tunnel.alive:
                self.tunnel.start_master(wait_forever=True)
            self.info = yield from self.remote.server(start=self.options.start)
            # a port of our own choice taken since we looked is not final: another one is
            for attempt in range(3):
                try:
                    self.tunnel.open(
                        forward_for(self.info, local_port), str(self.info.token), wait_forever=True
                    )
                    break
                except LocalPortTaken:
                    if requested is not None or attempt == 2:
                        raise
                    local_port = free_local_port(None)
            try:
                self._ready_as_told(READY_TIMEOUT)
            except ServerGone:
                raise NotRunning(
                    f"JupyterLab on {self.host} stopped while connecting; start it with "
                    f"`labshare connect --start {self.options.destination}`."
                ) from None
        forward = self.tunnel.forward
        if forward is None:  # every way here opens or adopts one
            raise LabshareError(f"The tunnel to {self.host} has no forward; run the command again.")
        self._remember()
        opened = False
        if self.options.open_browser:
            opened = bool(self.opener(self.url(with_token=True)))
        yield {
            "event": "ready",
            "host": self.host,
            "url": self.url(with_token=True),
            "url_without_token": self.url(with_token=False),
            "local_port": forward.local_port,
            "remote": forward.remote,
            "mode": self.info.mode,
            "user": self.info.user,
            "server_host": self.info.host,
            "browser": opened,
        }

    def _remembered_works(self, requested: int | None) -> bool:
        """Try the server this laptop remembers for the host; True once it answers through the tunnel.

        The ssh dial.py started early is used when it is the master this
        session would start now.  A stale memory (server moved, restarted with
        a new token, gone) costs one refused probe, then the forward is taken
        down and forgotten.
        """
        assert self.tunnel
        dialed = dial.take()
        info = self.memory.load()
        self.info = ServerInfo.remembered(info) if info else ServerInfo()
        adopted = (
            info is not None
            and dialed is not None
            and requested in (None, dialed.local_port)
            and self.tunnel.adopt(dialed, forward_for(info, dialed.local_port), str(info.token))
        )
        if dialed is not None and not adopted:
            dialed.end()
        if info is None:
            return False
        if not adopted:
            port = (
                free_local_port(requested) if requested else dial.pick_local_port(info.local_port)
            )
            forward = forward_for(info, port or free_local_port(None))
            self.tunnel.open(forward, str(info.token), wait_forever=True)
        try:
            self.tunnel.wait_ready(READY_TIMEOUT)
            return True
        except (ChannelRefused, Stale):
            self._check_stop()
            self.memory.forget()
            self.tunnel.close()
            self.info = ServerInfo()
            return False

    def _remember(self) -> None:
        assert self.tunnel and self.tunnel.forward
        self.memory.save(
            self.info, self.tunnel.forward.local_port, own_master=self.tunnel.plan.multiplexed
        )

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise Stopped()

    def _ready_as_told(self, timeout: float) -> None:
        """`wait_ready` for a forward the server just described, so a refusal has only two causes.

        sshd refusing the channel while labshare says the server runs means
        forwarding is off (an error); otherwise the server is gone (ServerGone).
        Any other answer than 200 for the token just given is not our server.
        """
        assert self.tunnel and self.remote
        try:
            self.tunnel.wait_ready(timeout)
        except ChannelRefused:
            self._check_stop()
            data = self.remote.info()
            if data.running:
                raise forwarding_refused(self.host, str(data.mode)) from None
            raise ServerGone() from None
        except Stale:
            raise HostUnreachable(
                f"Something other than your JupyterLab answered through the tunnel to {self.host} "
                f"(it refused the token); run `labshare restart` there and connect again."
            ) from None

    # -- staying up -----------------------------------------------------------------------

    def _watch(self) -> Iterator[Event]:
        """Check the tunnel until stopped; heal it whenever ssh dies or it stops answering."""
        assert self.tunnel
        failures = 0
        next_probe = time.monotonic() + PROBE_EVERY
        while True:
            self._stop.wait(0.05)
            self._check_stop()
            reason = None
            if not self.tunnel.alive:
                reason = f"ssh exited (code {self.tunnel.exit_status})"
            elif time.monotonic() >= next_probe:
                try:
                    failures = 0 if self.tunnel.probe() else failures + 1
                except (
                    ChannelRefused
                ):  # nothing listens there: unlike silence, a second look adds nothing
                    failures = PROBE_FAILURES
                next_probe = time.monotonic() + PROBE_EVERY
                if failures >= PROBE_FAILURES:
                    reason = "the tunnel stopped answering"
            if reason:
                self._check_stop()
                yield from self._heal(reason)
                failures = 0
                next_probe = time.monotonic() + PROBE_EVERY

    def _heal(self, reason: str) -> Iterator[Event]:
        """Reconnect on the same local port, with backoff; report each step as one event.

        A failure no retry can mend (errors.FINAL: a refused login, forwarding
        forbidden, ...) ends the session; anything else is tried again.
        """
        assert self.tunnel and self.tunnel.forward
        began = time.monotonic()
        yield {
            "event": "reconnecting",
            "host": self.host,
            "reason": reason,
            "local_port": self.tunnel.forward.local_port,
        }
        said_gone = False
        attempt = 0
        while True:
            delay = BACKOFF[min(attempt, len(BACKOFF) - 1)]
            attempt += 1
            if delay:
                self._stop.wait(delay)
            self._check_stop()
            try:
                said_gone = yield from self._mend(said_gone)
            except ServerGone:
                yield {
                    "event": "retry",
                    "host": self.host,
                    "attempt": attempt,
                    "reason": f"JupyterLab is not running on {self.host}",
                    "next_in": BACKOFF[min(attempt, len(BACKOFF) - 1)],
                }
                continue
            except LabshareError as exc:
                if isinstance(exc, FINAL):
                    raise
                yield {
                    "event": "retry",
                    "host": self.host,
                    "attempt": attempt,
                    "reason": exc.message,
                    "next_in": BACKOFF[min(attempt, len(BACKOFF) - 1)],
                }
                continue
            yield {
                "event": "reconnected",
                "host": self.host,
                "url": self.url(with_token=True),
                "local_port": self.tunnel.forward.local_port,
                "attempts": attempt,
                "downtime_s": round(time.monotonic() - began, 3),
            }
            return

    def _mend(self, said_gone: bool) -> Generator[Event, None, bool]:
        """One try at healing: the same forward again; if ssh works but the server does not answer,
        ask the server where it is now (starting it with --start).  Returns whether `server_gone`
        has been said."""
        assert self.tunnel and self.remote and self.tunnel.forward
        try:
            self.tunnel.reopen()
            self.tunnel.wait_ready(HEAL_READY_TIMEOUT)
        except (ChannelRefused, Stale, LabshareError):
            if not self.tunnel.alive:
                raise
            if not self.remote.info().running:
                if not said_gone:
                    said_gone = True
                    yield {
                        "event": "server_gone",
                        "host": self.host,
                        "will_start": self.options.start,
                    }
                if not self.options.start:
                    raise ServerGone() from None
            self.info = yield from self.remote.server(start=self.options.start)
            local_port = self.tunnel.forward.local_port
            self.tunnel.close()
            self.tunnel.open(forward_for(self.info, local_port), str(self.info.token))
            self._ready_as_told(HEAL_READY_TIMEOUT)
            self._remember()
        return said_gone


@dataclass(frozen=True)
class Manual:
    """What `--print` shows: the plain ssh line and the URL (the token stays on the server)."""

    host: str
    command: str
    url: str
    local_port: int
    remote: str
    token_hint: str


def manual(paths: Paths, options: Options) -> Manual:
    """Ask the server where it listens and build the `ssh -N -L` line a member can type anywhere."""
    settings = hosts.load(paths.user_config_file, options.destination)
    target = sshcmd.Target(options.destination, tuple(options.ssh_options))
    server = Remote(sshcmd.Plan(target), settings.labshare, paths.user_config_file)
    info = quietly(server.server(start=options.start))
    local = (
        options.local_port
        or settings.local_port
        or (info.port if info.mode == "tcp" and info.port else 8888)
    )
    forward = forward_for(info, local)
    return Manual(
        host=server.host,
        command=sshcmd.manual_command(target, forward),
        url=f"http://127.0.0.1:{local}/lab",
        local_port=local,
        remote=forward.remote,
        token_hint=f"log in with the token that `labshare info` shows on {server.host}",
    )
