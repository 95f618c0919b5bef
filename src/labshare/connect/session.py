"""One `labshare connect` from start to Ctrl-C: ask, tunnel, wait, open, heal, close.

`Session.events()` is a generator of plain event dicts (`ready`, `reconnecting`,
`reconnected`, `closed`, ...); the CLI prints them, nothing here does.  Every
ssh process the session starts is tracked by its Popen and ended by it, so a
Ctrl-C or SIGTERM leaves nothing behind while the server keeps running.
Only portable calls are used (Popen.terminate/kill, threading), because the
same code runs on Windows with its built-in OpenSSH.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

from labshare import probe
from labshare.connect import dial, hosts, known
from labshare.connect import ssh as sshcmd
from labshare.errors import LabshareError
from labshare.paths import Paths
from labshare.proc import tail

Event = dict[str, Any]
READY_TIMEOUT = 60.0
HEAL_READY_TIMEOUT = 8.0
PROBE_EVERY = 5.0
PROBE_TIMEOUT = 3.0
PROBE_FAILURES = 2
BACKOFF = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
REMOTE_TIMEOUT = 120.0
START_TIMEOUT = 300.0

UNREACHABLE_SIGNS = (
    "Could not resolve hostname", "Connection refused", "Connection timed out", "No route to host",
    "Network is unreachable", "Operation timed out", "Connection reset", "kex_exchange_identification",
    "Connection closed by remote host", "timed out during banner exchange",
)
AUTH_SIGNS = ("Permission denied", "Too many authentication failures", "Authentication failed")
HOSTKEY_SIGNS = ("Host key verification failed", "REMOTE HOST IDENTIFICATION HAS CHANGED",
                 "No ED25519 host key is known", "host key is known for")
# sshd answers "open failed" both when forwarding is disabled and when nothing listens behind
# the forward, so the server is asked which of the two it is.
REFUSED_SIGNS = ("open failed",)


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


class Stopped(Exception):
    """The user asked us to stop (Ctrl-C, SIGTERM); unwinds to the cleanup."""


class ServerGone(Exception):
    """The tunnel works but nothing listens behind it: the server stopped."""


class ChannelRefused(Exception):
    """sshd refused to open the forwarded connection: forwarding disabled, or the server gone."""


class Stale(Exception):
    """Something answered through the tunnel, but not with 200 for our token: another server now."""


def host_of(destination: str) -> str:
    return destination.rpartition("@")[2]


def classify_ssh_failure(stderr: str, destination: str) -> LabshareError:
    """Turn what ssh printed when it gave up into one sentence that says what to do."""
    host = host_of(destination)
    last = (stderr.strip().splitlines() or ["no message"])[-1].strip()
    if any(s in stderr for s in HOSTKEY_SIGNS):
        return LabshareError(
            f"ssh refused {host} because its host key is unknown or has changed; verify the key and fix "
            "~/.ssh/known_hosts (for example by running `ssh " + destination + "` once), "
            "since labshare never skips this check.", detail=tail(stderr))
    if any(s in stderr for s in AUTH_SIGNS):
        return LabshareError(
            f"ssh could not log in to {destination} (authentication failed); check your key, agent or "
            f"password with `ssh {destination}` and try again.", detail=tail(stderr), exit_code=5)
    if any(s in stderr for s in UNREACHABLE_SIGNS):
        return LabshareError(
            f"Cannot reach {host} over ssh ({last}); check the host name, your network or VPN, "
            f"and that `ssh {destination}` works.",
            detail=tail(stderr) if tail(stderr).strip() != last else None, exit_code=4)
    return LabshareError(f"ssh to {destination} failed ({last}); run `ssh {destination}` to see why.",
                         detail=tail(stderr) if tail(stderr).strip() != last else None, exit_code=4)


def forwarding_refused(host: str, mode: str) -> LabshareError:
    if mode == "socket":
        return LabshareError(
            f"The ssh server on {host} does not allow forwarding to Unix sockets "
            "(AllowStreamLocalForwarding or DisableForwarding in its sshd_config); on "
            f"{host} run `labshare stop` and `labshare start --tcp`, then connect again, "
            "or ask the admin to allow it.", exit_code=6)
    return LabshareError(
        f"The ssh server on {host} does not allow port forwarding (AllowTcpForwarding or "
        "DisableForwarding in its sshd_config); ask the admin to allow forwarding for your account.",
        exit_code=6)


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


def free_local_port(requested: int | None) -> int:
    """`requested` if nothing on this laptop holds it, else a clear error; a free port when None."""
    port = dial.bind_local(requested)
    if port is None:
        raise local_port_taken(requested)
    return port


def local_port_taken(port: int | None) -> LabshareError:
    return LabshareError(
        f"Local port {port} is already in use on this computer; pick another with "
        "--local-port, or leave it out to get a free one.", exit_code=2)


class _Keeper:
    """The long-lived ssh process, with its stderr kept (last lines) for diagnosis."""

    def __init__(self, proc: subprocess.Popen[str]):
        self.lines: collections.deque[str] = collections.deque(maxlen=200)
        self.count = 0
        self.proc = proc
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            self.count += 1

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def text(self) -> str:
        if not self.alive:
            self._reader.join(timeout=0.5)
        return "\n".join(self.lines)

    def seen(self, signs: tuple[str, ...], since: int = 0) -> bool:
        """Whether ssh printed one of `signs` in a line after the first `since` lines."""
        new = min(self.count - since, len(self.lines))
        return new > 0 and any(s in line for line in list(self.lines)[-new:] for s in signs)

    def end(self) -> None:
        dial.stop(self.proc)


class Session:
    """A tunnel from 127.0.0.1:<local> on this computer to the member's JupyterLab on the server."""

    def __init__(self, paths: Paths, options: Options, opener: Callable[[str], bool] | None = None):
        self.paths = paths
        self.options = options
        self.opener = opener or _open_browser
        self.host = host_of(options.destination)
        self.settings = hosts.load(paths.user_config_file, options.destination)
        self.target = sshcmd.Target(options.destination, tuple(options.ssh_options))
        self.memory = known.Memory(str(paths.state_root), options.destination, self.target.options)
        self._stop = threading.Event()
        self._stop_reason = "interrupted"
        self._keeper: _Keeper | None = None
        self._calls: set[subprocess.Popen[str]] = set()
        self._borrowed: sshcmd.Forward | None = None
        self.plan: sshcmd.Plan | None = None
        self.forward: sshcmd.Forward | None = None
        self.info: dict[str, Any] = {}

    # -- public ---------------------------------------------------------------------------

    def stop(self, reason: str = "interrupted") -> None:
        """Ask the session to end; safe from a signal handler or another thread."""
        self._stop_reason = reason
        self._stop.set()

    def events(self) -> Iterator[Event]:
        """Connect, report `ready`, keep the tunnel up until stopped, then report `closed`."""
        try:
            yield {"event": "connecting", "host": self.host, "destination": self.options.destination,
                   "login_started": dial.pending()}
            self.plan = sshcmd.plan(self.paths, self.target)
            for note in self.plan.notes:
                yield {"event": "note", "host": self.host, "message": note}
            requested = self.options.local_port or self.settings.local_port
            if not self._remembered_works(requested):
                local_port = free_local_port(requested)
                if self.plan.multiplexed and not self._tunnel_alive():
                    self._start_master(wait_forever=True)
                self.info = yield from self._server_info(start=self.options.start)
                self.forward = self._forward_for(local_port)
                self._open_forward(wait_forever=True)
                try:
                    self._ready_as_told(READY_TIMEOUT)
                except ServerGone:
                    raise LabshareError(
                        f"JupyterLab on {self.host} stopped while connecting; start it with "
                        f"`labshare connect --start {self.options.destination}`.", exit_code=3) from None
            self._remember()
            opened = False
            if self.options.open_browser:
                opened = bool(self.opener(self.url(with_token=True)))
            yield self._ready_event(opened)
            yield from self._watch()
        except Stopped:
            pass
        finally:
            self._cleanup()
        yield {"event": "closed", "host": self.host, "reason": self._stop_reason,
               "local_port": self.forward.local_port if self.forward else None}

    def url(self, with_token: bool) -> str:
        assert self.forward is not None
        base = f"http://127.0.0.1:{self.forward.local_port}/lab"
        return f"{base}?token={self.info['token']}" if with_token else base

    @property
    def ssh_pids(self) -> list[int]:
        pids = [p.pid for p in self._calls]
        if self._keeper:
            pids.append(self._keeper.proc.pid)
        return pids

    # -- steps ----------------------------------------------------------------------------

    def _ready_event(self, opened: bool) -> Event:
        assert self.forward is not None
        return {"event": "ready", "host": self.host, "url": self.url(with_token=True),
                "url_without_token": self.url(with_token=False), "local_port": self.forward.local_port,
                "remote": self.forward.remote, "mode": self.info.get("mode"),
                "user": self.info.get("user"), "server_host": self.info.get("host"), "browser": opened}

    def _remembered_works(self, requested: int | None) -> bool:
        """Try the server this laptop remembers for the host; True once it answers through the tunnel.

        The ssh dial.py started early is used when it is the master this
        session would start now.  A stale memory (server moved, restarted with
        a new token, gone) costs one refused probe, then the forward is taken
        down and forgotten.
        """
        dialed = dial.take()
        info = self.memory.load()
        self.info = info or {}
        adopted = info is not None and dialed is not None and self._adopt(dialed, requested)
        if dialed is not None and not adopted:
            dialed.end()
        if info is None:
            return False
        if adopted and dialed is not None:
            self._await_master(_Keeper(dialed.proc), wait_forever=True)
        else:
            port = free_local_port(requested) if requested else dial.pick_local_port(info.get("local_port"))
            self.forward = self._forward_for(port or free_local_port(None))
            self._open_forward(wait_forever=True)
        try:
            self._wait_ready(READY_TIMEOUT)
            return True
        except (ChannelRefused, Stale):
            self._check_stop()
            self.memory.forget()
            self._close_forward()
            self.info, self.forward = {}, None
            return False

    def _adopt(self, dialed: dial.Dialed, requested: int | None) -> bool:
        """Whether the early ssh is exactly the master this session would start; if so it becomes ours."""
        assert self.plan is not None
        if not self.plan.multiplexed or requested not in (None, dialed.local_port):
            return False
        forward = self._forward_for(dialed.local_port)
        if self.plan.master(forward) != dialed.argv:
            return False
        self.forward = forward
        return True

    def _remember(self) -> None:
        assert self.plan is not None and self.forward is not None
        self.memory.save(self.info, self.forward.local_port, own_master=self.plan.multiplexed)

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise Stopped()

    def _start_master(self, wait_forever: bool, timeout: float = 30.0,
                      forward: sshcmd.Forward | None = None) -> None:
        """Start our `ssh -M -N` (holding `forward` from the start, if given) and wait for its control socket.

        `wait_forever` is for the first connection, where the member may be
        answering a password or 2FA prompt; a reconnect gives up after `timeout`.
        """
        assert self.plan and self.plan.control_path
        path = str(self.plan.control_path)
        self._await_master(_Keeper(dial.spawn(self.plan.master(forward), path)), wait_forever, timeout)

    def _await_master(self, keeper: _Keeper, wait_forever: bool, timeout: float = 30.0) -> None:
        """Until the master's control socket appears: it is then logged in (and holds its forward)."""
        assert self.plan and self.plan.control_path
        self._keeper = keeper
        deadline = time.monotonic() + timeout
        while not self.plan.control_path.exists():
            self._check_stop()
            if not keeper.alive:
                raise self._tunnel_failure(keeper.text())
            if not wait_forever and time.monotonic() > deadline:
                keeper.end()
                raise LabshareError(f"ssh to {self.options.destination} did not connect within {timeout:.0f} s.",
                                    exit_code=4)
            self._stop.wait(0.002)  # a stat per wait; ready sooner

    def _tunnel_failure(self, stderr: str) -> LabshareError:
        """Why the ssh process holding the forward exited: the local port first, else what ssh said."""
        if self.forward and ("Address already in use" in stderr or "cannot listen to port" in stderr
                             or "forwarding failed" in stderr.lower()):
            return local_port_taken(self.forward.local_port)
        return classify_ssh_failure(stderr, self.options.destination)

    def _call(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        """Run a short ssh command, giving up early if the session is stopped."""
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, errors="replace")
        self._calls.add(proc)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    out, err = proc.communicate(timeout=0.1)
                    return subprocess.CompletedProcess(argv, proc.returncode, out, err)
                except subprocess.TimeoutExpired:
                    if self._stop.is_set() or time.monotonic() > deadline:
                        proc.kill()
                        proc.communicate()
                        self._check_stop()
                        raise LabshareError(
                            f"The server {self.host} did not answer within {timeout:.0f} s; try again.",
                            exit_code=4) from None
        finally:
            self._calls.discard(proc)

    def _remote(self, args: list[str], timeout: float = REMOTE_TIMEOUT) -> subprocess.CompletedProcess[str]:
        assert self.plan is not None
        command = sshcmd.remote_command(args, self.settings.labshare)
        done = self._call(self.plan.remote(command), timeout)
        if done.returncode == 255:
            raise classify_ssh_failure(done.stderr, self.options.destination)
        if done.returncode == sshcmd.NOT_FOUND_CODE and sshcmd.NOT_FOUND_MARK in done.stderr:
            raise self._missing()
        return done

    def _missing(self) -> LabshareError:
        key = hosts.host_key(self.options.destination)
        config = self.paths.user_config_file
        if self.settings.labshare:
            return LabshareError(
                f"labshare was not found at {self.settings.labshare} on {self.host} (set in {config}); "
                "fix that path or install labshare there.", exit_code=7)
        return LabshareError(
            f"labshare is not installed on {self.host} (not on PATH, in ~/.local/bin or in a login shell); "
            f"install it there with `uv tool install labshare` (or `pipx install labshare`), or tell "
            f'labshare where it is in {config} with [hosts.{key}] labshare = "/path/to/labshare".',
            exit_code=7)

    def _server_info(self, start: bool) -> Generator[Event, None, dict[str, Any]]:
        """`labshare info --json` on the server; with `start`, start it first when it is not running."""
        data = self._ask_info()
        if not data.get("running"):
            if not start:
                raise LabshareError(
                    f"JupyterLab is not running on {self.host}; start it with "
                    f"`labshare connect --start {self.options.destination}` (or `labshare start` there).",
                    exit_code=3)
            yield {"event": "starting", "host": self.host}
            done = self._remote(["start", "--json"], timeout=START_TIMEOUT)
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no message"])[-1]
                raise LabshareError(f"Starting JupyterLab on {self.host} failed: {last.removeprefix('labshare: error: ')}",
                                    detail=tail(done.stderr))
            data = self._ask_info()
            if not data.get("running"):
                raise LabshareError(
                    f"JupyterLab on {self.host} stopped right after starting; run `labshare logs` there to see why.")
            yield {"event": "started", "host": self.host, "mode": data.get("mode")}
        if not data.get("token"):
            raise LabshareError(f"labshare on {self.host} did not share the server's token; "
                                "update labshare there to the same version as here.")
        if data.get("mode") == "socket" and not data.get("socket") or data.get("mode") == "tcp" and not data.get("port"):
            raise LabshareError(f"labshare on {self.host} did not say where JupyterLab listens; update it there.")
        return data

    def _ask_info(self) -> dict[str, Any]:
        done = self._remote(["info", "--json"])
        data = parse_json_output(done.stdout)
        if data is None:
            raise LabshareError(
                f"labshare on {self.host} did not answer `info --json` as expected; "
                f"run `labshare info` there to see why, or update it.", detail=tail(done.stderr or done.stdout))
        return data

    def _forward_for(self, local_port: int) -> sshcmd.Forward:
        if self.info.get("mode") == "tcp":
            return sshcmd.Forward(local_port, remote_port=int(self.info["port"]))
        return sshcmd.Forward(local_port, remote_socket=str(self.info["socket"]))

    def _open_forward(self, wait_forever: bool = False) -> None:
        """Add the forward to our master (starting it with the forward when there is none yet), or start
        the plain `ssh -N -L` process."""
        assert self.plan and self.forward
        if self.plan.multiplexed:
            if not self._tunnel_alive():
                self._start_master(wait_forever, forward=self.forward)
                return
            done = self._call(self.plan.add_forward(self.forward), timeout=30)
            if done.returncode != 0:
                raise self._tunnel_failure(done.stderr)
            return
        self._keeper = keeper = _Keeper(dial.spawn(self.plan.tunnel(self.forward)))
        self._borrowed = None
        deadline = time.monotonic() + 1.0
        while keeper.alive and time.monotonic() < deadline and not self._answers(timeout=0.5):
            self._stop.wait(0.05)
        if not keeper.alive:
            if keeper.proc.returncode == 0:
                self._borrowed = self.forward  # the user's own ControlMaster now holds the forward
                return
            raise self._tunnel_failure(keeper.text())

    def _answer(self, timeout: float = PROBE_TIMEOUT) -> int | None:
        """The HTTP status `/api/status` gives our token through the tunnel; None when nothing answers."""
        assert self.forward
        address = probe.Address(host="127.0.0.1", port=self.forward.local_port)
        try:
            return probe.request(address, "/api/status", token=str(self.info["token"]), timeout=timeout).status
        except (OSError, ValueError):
            return None

    def _answers(self, timeout: float = PROBE_TIMEOUT) -> bool:
        return self._answer(timeout) == 200

    def _tunnel_alive(self) -> bool:
        if self._keeper is not None and self._keeper.alive:
            return True
        return self._borrowed is not None

    def _wait_ready(self, timeout: float) -> None:
        """Until `/api/status` answers 200 through the tunnel with the token."""
        deadline = time.monotonic() + timeout
        mark = self._keeper.count if self._keeper is not None else 0
        while True:
            self._check_stop()
            if not self._tunnel_alive():
                assert self._keeper is not None
                raise self._tunnel_failure(self._keeper.text())
            answer = self._answer(timeout=2.0)
            if answer == 200:
                return
            if answer is not None:
                raise Stale()
            if self._keeper is not None and self._keeper.seen(REFUSED_SIGNS, since=mark):
                raise ChannelRefused()
            if time.monotonic() > deadline:
                raise LabshareError(
                    f"JupyterLab on {self.host} did not answer through the tunnel within {timeout:.0f} s; "
                    "run `labshare status` there and try again.", exit_code=4)
            self._stop.wait(0.01)

    def _ready_as_told(self, timeout: float) -> None:
        """`_wait_ready` for a forward the server just described, so a refusal has only two causes.

        sshd refusing the channel while labshare says the server runs means
        forwarding is off (an error); otherwise the server is gone (ServerGone).
        Any other answer than 200 for the token just given is not our server.
        """
        try:
            self._wait_ready(timeout)
        except ChannelRefused:
            self._check_stop()
            data = self._ask_info()
            if data.get("running"):
                raise forwarding_refused(self.host, str(data.get("mode"))) from None
            raise ServerGone() from None
        except Stale:
            raise LabshareError(
                f"Something other than your JupyterLab answered through the tunnel to {self.host} "
                f"(it refused the token); run `labshare restart` there and connect again.", exit_code=4) from None

    # -- staying up -----------------------------------------------------------------------

    def _watch(self) -> Iterator[Event]:
        """Check the tunnel until stopped; heal it whenever ssh dies or it stops answering."""
        failures = 0
        next_probe = time.monotonic() + PROBE_EVERY
        while True:
            self._stop.wait(0.05)
            self._check_stop()
            reason = None
            if not self._tunnel_alive():
                reason = f"ssh exited (code {self._keeper.proc.returncode if self._keeper else '?'})"
            elif time.monotonic() >= next_probe:
                failures = 0 if self._answers() else failures + 1
                next_probe = time.monotonic() + PROBE_EVERY
                if failures >= PROBE_FAILURES:
                    reason = "the tunnel stopped answering"
            if reason:
                self._check_stop()
                yield from self._heal(reason)
                failures = 0
                next_probe = time.monotonic() + PROBE_EVERY

    def _heal(self, reason: str) -> Iterator[Event]:
        """Reconnect on the same local port, with backoff; report each step as one event."""
        assert self.forward
        began = time.monotonic()
        yield {"event": "reconnecting", "host": self.host, "reason": reason, "local_port": self.forward.local_port}
        said_gone = False
        attempt = 0
        while True:
            delay = BACKOFF[min(attempt, len(BACKOFF) - 1)]
            attempt += 1
            if delay:
                self._stop.wait(delay)
            self._check_stop()
            try:
                self._drop_tunnel()
                try:
                    self._open_forward()
                    self._wait_ready(HEAL_READY_TIMEOUT)
                except (ChannelRefused, Stale, LabshareError):
                    if not self._tunnel_alive():
                        raise
                    data = self._ask_info()
                    if not data.get("running"):
                        if not said_gone:
                            said_gone = True
                            yield {"event": "server_gone", "host": self.host, "will_start": self.options.start}
                        if not self.options.start:
                            raise ServerGone() from None
                    self.info = yield from self._server_info(start=self.options.start)
                    self._close_forward()
                    self.forward = self._forward_for(self.forward.local_port)
                    self._open_forward()
                    self._ready_as_told(HEAL_READY_TIMEOUT)
                    self._remember()
            except ServerGone:
                yield {"event": "retry", "host": self.host, "attempt": attempt,
                       "reason": f"JupyterLab is not running on {self.host}",
                       "next_in": BACKOFF[min(attempt, len(BACKOFF) - 1)]}
                continue
            except LabshareError as exc:
                if exc.exit_code in (2, 5, 6, 7):
                    raise
                yield {"event": "retry", "host": self.host, "attempt": attempt, "reason": exc.message,
                       "next_in": BACKOFF[min(attempt, len(BACKOFF) - 1)]}
                continue
            yield {"event": "reconnected", "host": self.host, "url": self.url(with_token=True),
                   "local_port": self.forward.local_port, "attempts": attempt,
                   "downtime_s": round(time.monotonic() - began, 3)}
            return

    # -- ending ---------------------------------------------------------------------------

    def _close_forward(self) -> None:
        """Take down the forward but keep our master, so a 2FA prompt is not asked again."""
        assert self.plan and self.forward
        if self.plan.multiplexed and self._keeper is not None and self._keeper.alive:
            self._call(self.plan.cancel_forward(self.forward), timeout=30)
        else:
            self._drop_tunnel()

    def _drop_tunnel(self) -> None:
        if self._borrowed is not None and self.plan is not None:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(self.plan.cancel_forward(self._borrowed), stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=10, check=False)
            self._borrowed = None
        if self._keeper is not None:
            self._keeper.end()
            self._keeper = None

    def _cleanup(self) -> None:
        """End every ssh process this session started; the server itself is left running."""
        for proc in list(self._calls):
            with contextlib.suppress(OSError):
                proc.kill()
                proc.wait(5)
        self._drop_tunnel()
        if self.plan is not None and self.plan.control_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.plan.control_path)


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
    session = Session(paths, options, opener=lambda _url: False)
    session.plan = sshcmd.Plan(session.target)
    gen = session._server_info(start=options.start)
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        session.info = stop.value
    local = options.local_port or session.settings.local_port or (
        int(session.info["port"]) if session.info.get("mode") == "tcp" else 8888)
    forward = session._forward_for(local)
    return Manual(
        host=session.host,
        command=sshcmd.manual_command(session.target, forward),
        url=f"http://127.0.0.1:{local}/lab",
        local_port=local,
        remote=forward.remote,
        token_hint=f"log in with the token that `labshare info` shows on {session.host}",
    )
