"""Laptop-side checks for `labshare doctor HOST`: the road `labshare connect` takes, step by step.

It uses connect's own pieces (ssh -G, the remote lookup of labshare, the
`-L` forward, the failure classifier), so a doctor that says ok means
`connect` will work, and one that fails says what `connect` would have said.
Every ssh process it starts is ended by its Popen before it returns.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import subprocess
import sys
import tempfile
import time
import webbrowser
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from labshare import __version__, probe
from labshare.connect import dial, hosts, session
from labshare.connect import ssh as sshcmd
from labshare.doctor import FAIL, OK, WARN, Check
from labshare.errors import LabshareError
from labshare.paths import Paths

REMOTE_TIMEOUT = 60.0
TUNNEL_TIMEOUT = 20.0


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


def ssh_config(target: sshcmd.Target) -> Check:
    try:
        cfg = sshcmd.effective_config(target)
    except LabshareError as exc:
        return Check("ssh-config", FAIL, exc.message, f"ssh {target.destination}")
    where = f"{cfg.get('user', '?')}@{cfg.get('hostname', '?')}:{cfg.get('port', '22')}"
    return Check("ssh-config", OK, f"{target.destination} is {where} in your ssh config")


def _remote(target: sshcmd.Target, labshare: str | None, args: list[str]) -> subprocess.CompletedProcess[str]:
    argv = sshcmd.Plan(target).remote(sshcmd.remote_command(args, labshare))
    return subprocess.run(argv, capture_output=True, text=True, timeout=REMOTE_TIMEOUT,
                          stdin=subprocess.DEVNULL, check=False, errors="replace")


def reach_and_version(target: sshcmd.Target, labshare: str | None) -> tuple[list[Check], bool]:
    """ssh logs in, and labshare answers `--version` on the server; the bool says whether to go on."""
    host = session.host_of(target.destination)
    try:
        done = _remote(target, labshare, ["--version"])
    except subprocess.TimeoutExpired:
        return [Check("ssh-reach", FAIL, f"ssh to {target.destination} did not finish within {REMOTE_TIMEOUT:.0f} s",
                      f"run `ssh {target.destination}` to see where it hangs (a password or 2FA prompt?)")], False
    except FileNotFoundError:
        return [Check("ssh-reach", FAIL, f"the OpenSSH client `{target.ssh}` was not found",
                      "install OpenSSH (on Windows: Settings > Optional features > OpenSSH Client)")], False
    if done.returncode == 255:
        err = session.classify_ssh_failure(done.stderr, target.destination)
        return [Check("ssh-reach", FAIL, err.message, f"ssh {target.destination}")], False
    checks = [Check("ssh-reach", OK, f"ssh logs in to {target.destination}")]
    if done.returncode == sshcmd.NOT_FOUND_CODE and sshcmd.NOT_FOUND_MARK in done.stderr:
        where = f"at {labshare}" if labshare else "on PATH, in ~/.local/bin or in a login shell"
        checks.append(Check("labshare-remote", FAIL, f"labshare was not found on {host} ({where})",
                            f"on {host}: uv tool install labshare; or set [hosts.{hosts.host_key(target.destination)}] "
                            "labshare = \"/path/to/labshare\" in your labshare config"))
        return checks, False
    m = re.search(r"version\s+(\S+)", done.stdout)
    if done.returncode != 0 or not m:
        checks.append(Check("labshare-remote", FAIL, f"`labshare --version` failed on {host} "
                            f"({(done.stderr.strip().splitlines() or ['no message'])[-1]})",
                            f"on {host}: pip install --upgrade labshare"))
        return checks, False
    theirs = m.group(1)
    if _major_minor(theirs) != _major_minor(__version__):
        checks.append(Check("labshare-remote", WARN,
                            f"labshare {theirs} on {host}, {__version__} here: versions differ",
                            "install the same labshare version on both sides"))
    else:
        checks.append(Check("labshare-remote", OK, f"labshare {theirs} on {host} (here {__version__})"))
    return checks, True


def _server_info(target: sshcmd.Target, labshare: str | None) -> dict[str, Any] | None:
    done = _remote(target, labshare, ["info", "--json"])
    return session.parse_json_output(done.stdout)


GREETING = b"labshare-doctor\n"


def serve_test_socket(paths: Paths, announce: Callable[[Path], None], timeout: float = 60.0) -> None:
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
            ready, _, _ = select.select([server, sys.stdin], [], [], max(0.0, deadline - time.monotonic()))
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


def _read(stream: Any) -> str:
    stream.flush()
    stream.seek(0)
    return str(stream.read())


def _first_line(proc: subprocess.Popen[str], timeout: float) -> str | None:
    import threading

    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline() if proc.stdout else ""), daemon=True)
    reader.start()
    reader.join(timeout)
    return box[0].strip() if box and box[0].strip() else None


def _end(proc: subprocess.Popen[Any]) -> None:
    if proc.stdin:
        with contextlib.suppress(OSError):
            proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
    dial.stop(proc)


def _refused(ssh_stderr: str) -> bool:
    return any(s in ssh_stderr for s in session.REFUSED_SIGNS)


def _greeted(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.settimeout(5)
        data = b""
        while len(data) < len(GREETING):
            chunk = sock.recv(64)
            if not chunk:
                break
            data += chunk
        return data == GREETING
    return False


def _wait_listening(proc: subprocess.Popen[Any], port: int) -> bool:
    deadline = time.monotonic() + TUNNEL_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        time.sleep(0.1)
    return False


def forwarding(target: sshcmd.Target, labshare: str | None, info: dict[str, Any] | None) -> Check:
    """Open a test tunnel the way `connect` does, use it once, and close it.

    To the member's JupyterLab when it runs (an authenticated /api/status through the tunnel);
    otherwise to a throwaway socket that `labshare doctor --serve-test-socket` holds on the server.
    """
    host = session.host_of(target.destination)
    running = bool(info and info.get("running") and info.get("token"))
    mode = str((info or {}).get("mode") or "socket") if running else "socket"
    helper: subprocess.Popen[str] | None = None
    local = session.free_local_port(None)
    if running and mode == "tcp":
        forward = sshcmd.Forward(local, remote_port=int(info["port"]))  # type: ignore[index]
    elif running:
        forward = sshcmd.Forward(local, remote_socket=str(info["socket"]))  # type: ignore[index]
    else:
        argv = sshcmd.Plan(target).remote(sshcmd.remote_command(["doctor", "--serve-test-socket"], labshare))
        helper = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True)
        path = _first_line(helper, REMOTE_TIMEOUT)
        if not path or not path.startswith("/"):
            _end(helper)
            return Check("forwarding", WARN,
                         f"your JupyterLab on {host} is not running and labshare there cannot hold a test socket",
                         f"labshare connect --start {target.destination} tests it for real")
        forward = sshcmd.Forward(local, remote_socket=path)
    with tempfile.TemporaryFile(mode="w+", errors="replace") as err:
        tunnel = subprocess.Popen(sshcmd.Plan(target).tunnel(forward), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=err)
        answered = False
        try:
            if running:
                if _wait_listening(tunnel, local):
                    address = probe.Address(host="127.0.0.1", port=local)
                    answered = probe.status(address, str(info["token"]), timeout=5) is not None  # type: ignore[index]
            else:
                deadline = time.monotonic() + TUNNEL_TIMEOUT
                while tunnel.poll() is None and time.monotonic() < deadline and not _refused(_read(err)):
                    answered = _greeted(local)
                    if answered:
                        break
                    time.sleep(0.2)
            died = tunnel.poll() is not None
        finally:
            _end(tunnel)
            if helper is not None:
                _end(helper)
        text = _read(err)
    if answered:
        what = "your JupyterLab" if running else "a test socket on the server"
        return Check("forwarding", OK, f"a test tunnel to {forward.remote} reached {what}, then closed")
    if died:
        return Check("forwarding", FAIL, session.classify_ssh_failure(text, target.destination).message,
                     f"ssh -N -L {forward.spec()} {target.destination}")
    if _refused(text):
        refused = session.forwarding_refused(host, mode)
        fix = ("on the server: labshare stop && labshare start --tcp; or ask the admin to allow forwarding"
               if mode == "socket" else "ask the admin to allow TCP forwarding for your account")
        return Check("forwarding", FAIL, refused.message.split(";")[0], fix)
    return Check("forwarding", FAIL, f"a test tunnel to {forward.remote} opened but nothing answered through it",
                 f"on {host}: labshare status; labshare logs")


def browser() -> Check:
    """`connect` opens a tab with Python's webbrowser module; without one it prints the URL."""
    try:
        found = webbrowser.get()
    except webbrowser.Error:
        return Check("browser", WARN, "no web browser can be opened from here",
                     "labshare connect --no-browser HOST prints the URL to open by hand")
    name = getattr(found, "name", None) or type(found).__name__
    return Check("browser", OK, f"a browser can be opened ({name})")


def run_all(paths: Paths, destination: str, ssh_options: Sequence[str] = ()) -> list[Check]:
    target = sshcmd.Target(destination, tuple(ssh_options))
    try:
        settings = hosts.load(paths.user_config_file, destination)
    except LabshareError as exc:
        return [Check("laptop-config", FAIL, exc.message, f"fix {paths.user_config_file}"), browser()]
    checks = [ssh_config(target)]
    if checks[0].status == FAIL:
        return [*checks, browser()]
    more, go_on = reach_and_version(target, settings.labshare)
    checks += more
    if go_on:
        try:
            info = _server_info(target, settings.labshare)
        except subprocess.TimeoutExpired:
            info = None
        checks.append(forwarding(target, settings.labshare, info))
    checks.append(browser())
    return checks
