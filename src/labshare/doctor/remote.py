"""Laptop-side checks for `labshare doctor HOST`: the road `labshare connect` takes, step by step.

It uses connect's own pieces (ssh -G, the remote lookup of labshare, the
`-L` forward, the failure classifier), so a doctor that says ok means
`connect` will work, and one that fails says what `connect` would have said.
Every ssh process it starts is ended by its Popen before it returns.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import tempfile
import time
import webbrowser
from collections.abc import Sequence
from typing import Any

from labshare import __version__, probe
from labshare.connect import hosts, session
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


def _trigger(port: int) -> None:
    """Open one connection through the forward so sshd decides, and says, whether it allows it."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.settimeout(3)
        with contextlib.suppress(OSError):
            sock.sendall(b"GET /api/status HTTP/1.0\r\n\r\n")
            sock.recv(64)


def forwarding(target: sshcmd.Target, info: dict[str, Any] | None) -> Check:
    """Open a test tunnel the way `connect` does, use it once, and close it."""
    host = session.host_of(target.destination)
    running = bool(info and info.get("running") and info.get("token"))
    mode = str((info or {}).get("mode") or "socket")
    if running and mode == "tcp":
        remote = sshcmd.Forward(0, remote_port=int(info["port"]))  # type: ignore[index]
    else:
        remote = sshcmd.Forward(0, remote_socket=str((info or {}).get("socket") or "/nonexistent/labshare-doctor.sock"))
    local = session.free_local_port(None)
    forward = sshcmd.Forward(local, remote.remote_socket, remote.remote_port)
    argv = sshcmd.Plan(target).tunnel(forward)
    with tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        try:
            answered = False
            deadline = time.monotonic() + TUNNEL_TIMEOUT
            while time.monotonic() < deadline and proc.poll() is None:
                with contextlib.suppress(OSError):
                    socket.create_connection(("127.0.0.1", local), timeout=1).close()
                    break
                time.sleep(0.1)
            if proc.poll() is None:
                if running:
                    address = probe.Address(host="127.0.0.1", port=local)
                    answered = probe.status(address, str(info["token"]), timeout=5) is not None  # type: ignore[index]
                else:
                    _trigger(local)
                time.sleep(0.3)
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        err.seek(0)
        text = err.read()
    if any(s in text for s in session.PROHIBITED_SIGNS):
        refused = session.forwarding_refused(host, mode)
        fix = "on the server: labshare stop && labshare start --tcp; or ask the admin to allow forwarding"
        return Check("forwarding", FAIL, refused.message.split(";")[0], fix)
    if proc.returncode not in (0, None, -15, 143) and not answered:
        return Check("forwarding", FAIL, session.classify_ssh_failure(text, target.destination).message,
                     f"ssh -N -L {forward.spec()} {target.destination}")
    if answered:
        return Check("forwarding", OK, f"a test tunnel to {forward.remote} reached your JupyterLab, then closed")
    if running:
        return Check("forwarding", FAIL, f"a test tunnel to {forward.remote} opened but JupyterLab did not answer",
                     f"on {host}: labshare status; labshare logs")
    return Check("forwarding", OK,
                 f"sshd on {host} allows forwarding to a Unix socket (your JupyterLab is not running, "
                 "so it was not reached end to end)",
                 f"labshare connect --start {target.destination}")


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
        checks.append(forwarding(target, info))
    checks.append(browser())
    return checks
