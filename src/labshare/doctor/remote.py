"""Laptop-side checks for `labshare doctor HOST`: the road `labshare connect` takes, step by step.

It uses connect's own pieces (ssh -G, the remote call of labshare, the `-L`
forward and the ssh keeper that reads its stderr, the failure classifier), so
a doctor that says ok means `connect` will work, and one that fails says what
`connect` would have said.  Every ssh process it starts is ended before it
returns.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import subprocess
import sys
import time
import webbrowser
from collections.abc import Callable, Sequence
from pathlib import Path

from labshare import __version__, proc
from labshare.connect import diagnose, dial, hosts, tunnel
from labshare.connect import ssh as sshcmd
from labshare.connect.remote import Remote, forward_for
from labshare.doctor import FAIL, OK, WARN, Check
from labshare.errors import LabshareError, LabshareMissing
from labshare.install_hint import REMOTE_INSTALL, REMOTE_UPGRADE
from labshare.paths import Paths
from labshare.records.info import ServerInfo

REMOTE_TIMEOUT = 60.0
TUNNEL_TIMEOUT = 20.0


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


def ssh_config(target: sshcmd.Target) -> tuple[Check, dict[str, str]]:
    """Whether ssh can use the destination, and the options it would use (empty when it cannot)."""
    try:
        cfg = sshcmd.effective_config(target)
    except LabshareError as exc:
        return Check("ssh-config", FAIL, exc.message, f"ssh {target.destination}"), {}
    where = f"{cfg.get('user', '?')}@{cfg.get('hostname', '?')}:{cfg.get('port', '22')}"
    return Check("ssh-config", OK, f"{target.destination} is {where} in your ssh config"), cfg


def reach_and_version(remote: Remote) -> tuple[list[Check], bool]:
    """ssh logs in, and labshare answers `--version` on the server; the bool says whether to go on."""
    host, destination = remote.host, remote.destination
    try:
        done = remote.run(["--version"], timeout=REMOTE_TIMEOUT)
    except tunnel.NoAnswer:
        return [
            Check(
                "ssh-reach",
                FAIL,
                f"ssh to {destination} did not finish within {REMOTE_TIMEOUT:.0f} s",
                f"run `ssh {destination}` to see where it hangs (a password or 2FA prompt?)",
            )
        ], False
    except LabshareMissing:
        where = (
            f"at {remote.labshare}"
            if remote.labshare
            else "on PATH, in ~/.local/bin or in a login shell"
        )
        return [
            Check("ssh-reach", OK, f"ssh logs in to {destination}"),
            Check(
                "labshare-remote",
                FAIL,
                f"labshare was not found on {host} ({where})",
                f"on {host}: {REMOTE_INSTALL}; or set [hosts.{host}] "
                'labshare = "/path/to/labshare" in your labshare config',
            ),
        ], False
    except LabshareError as exc:
        return [Check("ssh-reach", FAIL, exc.message, f"ssh {destination}")], False
    checks = [Check("ssh-reach", OK, f"ssh logs in to {destination}")]
    m = re.search(r"version\s+(\S+)", done.stdout)
    if done.returncode != 0 or not m:
        checks.append(
            Check(
                "labshare-remote",
                FAIL,
                f"`labshare --version` failed on {host} "
                f"({(done.stderr.strip().splitlines() or ['no message'])[-1]})",
                f"on {host}: {REMOTE_UPGRADE}",
            )
        )
        return checks, False
    theirs = m.group(1)
    if _major_minor(theirs) != _major_minor(__version__):
        checks.append(
            Check(
                "labshare-remote",
                WARN,
                f"labshare {theirs} on {host}, {__version__} here: versions differ",
                "install the same labshare version on both sides",
            )
        )
    else:
        checks.append(
            Check("labshare-remote", OK, f"labshare {theirs} on {host} (here {__version__})")
        )
    return checks, True


def _server_info(remote: Remote) -> ServerInfo | None:
    """What `labshare info --json` says there; None when it cannot be asked or read (the version check says why)."""
    try:
        return remote.info(timeout=REMOTE_TIMEOUT)
    except LabshareError:
        return None


GREETING = b"labshare-doctor\n"


def serve_test_socket(
    paths: Paths, announce: Callable[[Path], None], timeout: float = 60.0
) -> None:
    """The server end of the tunnel test: a private socket that greets visitors until the laptop hangs up.

    Run on the server as `labshare doctor --serve-test-socket`; `announce` tells the laptop the path.
    """
    import os

    from labshare.files import ensure_private_dir
    from labshare.paths import socket_path_fits

    path = paths.state_dir / "run" / f"doctor-{os.getpid()}.sock"
    if not socket_path_fits(path):
        path = paths.fallback_socket.parent / f"doctor-{os.getpid()}.sock"
    ensure_private_dir(path.parent)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old = os.umask(0o177)
        try:
            server.bind(str(path))
        finally:
            os.umask(old)
        server.listen(4)
        announce(path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select(
                [server, sys.stdin], [], [], max(0.0, deadline - time.monotonic())
            )
            if sys.stdin in ready:
                break  # the laptop closed its end: the test is over
            if server in ready:
                conn, _ = server.accept()
                with conn, contextlib.suppress(OSError):
                    conn.sendall(GREETING)
    finally:
        server.close()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _first_line(helper: subprocess.Popen[str], timeout: float) -> str | None:
    import threading

    box: list[str] = []
    reader = threading.Thread(
        target=lambda: box.append(helper.stdout.readline() if helper.stdout else ""), daemon=True
    )
    reader.start()
    reader.join(timeout)
    return box[0].strip() if box and box[0].strip() else None


def _end(helper: subprocess.Popen[str]) -> None:
    """Close the test socket's stdin, which tells it the test is over, then make sure it ended."""
    if helper.stdin:
        with contextlib.suppress(OSError):
            helper.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            helper.wait(5)
    dial.stop(helper)


def _greeted(port: int) -> bool:
    """Whether the test socket's greeting comes through; ChannelRefused when ssh closes the connection
    without a byte, as it does when sshd refuses the forwarded channel."""
    data = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            while len(data) < len(GREETING):
                chunk = sock.recv(64)
                if not chunk:
                    break
                data += chunk
    except (ConnectionResetError, ConnectionAbortedError):
        pass
    except OSError:
        return False  # not listening yet, or no answer in time
    if not data:
        raise tunnel.ChannelRefused()
    return data == GREETING


def forwarding(remote: Remote, info: ServerInfo | None) -> Check:
    """Open a test tunnel the way `connect` does, use it once, and close it.

    To the member's JupyterLab when it runs (an authenticated /api/status through the tunnel);
    otherwise to a throwaway socket that `labshare doctor --serve-test-socket` holds on the server.
    """
    local = tunnel.free_local_port(None)
    if info and info.running and info.token:
        token = info.token
        return _through(
            remote,
            forward_for(info, local),
            info.mode or "socket",
            "your JupyterLab",
            lambda: tunnel.answer(local, token, timeout=5) == 200,
        )
    helper = proc.start(
        remote.argv(["doctor", "--serve-test-socket"]),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        path = _first_line(helper, REMOTE_TIMEOUT)
        if not path or not path.startswith("/"):
            return Check(
                "forwarding",
                WARN,
                f"your JupyterLab on {remote.host} is not running and labshare there cannot hold a test socket",
                f"labshare connect --start {remote.destination} tests it for real",
            )
        return _through(
            remote,
            sshcmd.Forward(local, remote_socket=path),
            "socket",
            "a test socket on the server",
            lambda: _greeted(local),
        )
    finally:
        _end(helper)


def _through(
    remote: Remote, forward: sshcmd.Forward, mode: str, what: str, reached: Callable[[], bool]
) -> Check:
    """Hold `forward` with a plain `ssh -N -L` until `reached()`, ssh gives up, sshd refuses, or time is up.

    `reached` raises ChannelRefused when sshd refuses the channel: known from
    the connection itself, so the member's ssh `LogLevel` does not matter.
    """
    keeper = tunnel.Keeper(dial.spawn(remote.plan.tunnel(forward)))
    answered = refused = False
    try:
        deadline = time.monotonic() + TUNNEL_TIMEOUT
        while keeper.alive and time.monotonic() < deadline:
            try:
                answered = reached()
            except tunnel.ChannelRefused:
                refused = True
            if answered or refused:
                break
            time.sleep(0.2)
        died = not keeper.alive
    finally:
        keeper.end()
    if answered:
        return Check(
            "forwarding", OK, f"a test tunnel to {forward.remote} reached {what}, then closed"
        )
    if refused:
        sentence = diagnose.forwarding_refused(remote.host, mode).message
        fix = (
            "on the server: labshare stop && labshare start --tcp; or ask the admin to allow forwarding"
            if mode == "socket"
            else "ask the admin to allow TCP forwarding for your account"
        )
        return Check("forwarding", FAIL, sentence.split(";")[0], fix)
    if died:
        return Check(
            "forwarding",
            FAIL,
            diagnose.classify_ssh_failure(keeper.text(), remote.destination).message,
            f"ssh -N -L {forward.spec()} {remote.destination}",
        )
    return Check(
        "forwarding",
        FAIL,
        f"a test tunnel to {forward.remote} opened but nothing answered through it",
        f"on {remote.host}: labshare status; labshare logs",
    )


def browser() -> Check:
    """`connect` opens a tab with Python's webbrowser module; without one it prints the URL."""
    try:
        found = webbrowser.get()
    except webbrowser.Error:
        return Check(
            "browser",
            WARN,
            "no web browser can be opened from here",
            "labshare connect --no-browser HOST prints the URL to open by hand",
        )
    name = getattr(found, "name", None) or type(found).__name__
    return Check("browser", OK, f"a browser can be opened ({name})")


def run_all(paths: Paths, destination: str, ssh_options: Sequence[str] = ()) -> list[Check]:
    target = sshcmd.Target(destination, tuple(ssh_options))
    try:
        settings = hosts.load(paths.user_config_file, destination)
    except LabshareError as exc:
        return [
            Check("laptop-config", FAIL, exc.message, f"fix {paths.user_config_file}"),
            browser(),
        ]
    found, config = ssh_config(target)
    checks = [found]
    if found.status == FAIL:
        return [*checks, browser()]
    remote = Remote(
        sshcmd.Plan(sshcmd.audible(target, config)), settings.labshare, paths.user_config_file
    )
    more, go_on = reach_and_version(remote)
    checks += more
    if go_on:
        checks.append(forwarding(remote, _server_info(remote)))
    checks.append(browser())
    return checks
