"""`labshare connect` from a laptop account to a server account through a real sshd on loopback."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import posix_less
import psutil
import pytest
import sshd as sshd_helper
from conftest import LABSHARE, Member
from jupyter_api import Lab

from labshare import localports
from labshare.connect import ssh as sshcmd

pytestmark = pytest.mark.sshd
# the tests on the `served` server: one group, so one worker boots it once
SERVED = pytest.mark.xdist_group("connect-served")


class Connect:
    """A running `labshare connect --json`, its events read line by line on a thread."""

    def __init__(self, laptop: Member, *args: str):
        self.proc = laptop.popen(
            [LABSHARE, "connect", "--no-browser", "--json", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: queue.Queue[dict] = queue.Queue()
        self.seen: list[dict] = []
        self.read_all = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout
        try:
            for line in self.proc.stdout:
                if line.strip():
                    self.events.put(json.loads(line))
        finally:
            self.read_all.set()

    def wait_for(self, kind: str, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = self.events.get(timeout=0.5)
            except queue.Empty:
                # Its end of output, not its exit: the last lines may still be on their way to the queue.
                if self.read_all.is_set() and self.events.empty() and self.proc.poll() is not None:
                    raise AssertionError(
                        f"connect exited {self.proc.returncode} before {kind!r}: "
                        f"{self.seen} {self.proc.stderr.read() if self.proc.stderr else ''}"
                    ) from None
                continue
            self.seen.append(event)
            if event["event"] == kind:
                return event
        raise AssertionError(f"no {kind!r} event within {timeout} s; saw {self.seen}")

    def ssh_children(self) -> list[psutil.Process]:
        """The ssh processes connect runs now; one that has exited and awaits reaping is not one of them."""
        return [p for p, _ in self.ssh_argvs()]

    def ssh_argvs(self) -> list[tuple[psutil.Process, list[str]]]:
        """Each live ssh child with its command line, read at once: a short ssh call may end meanwhile."""
        try:
            kids = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        found = []
        for kid in kids:
            try:
                if kid.name() == "ssh":
                    found.append((kid, kid.cmdline()))
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
        return found

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def close(self) -> None:
        """SIGTERM, as a member closing the terminal; a kill only if that did not end it."""
        self.proc.terminate()
        try:
            self.proc.wait(30)
        finally:
            self.kill()


@pytest.fixture
def running(lab: sshd_helper.Lab) -> sshd_helper.Lab:
    lab.server.run("start", check=True)
    return lab


@pytest.fixture
def connects() -> Iterator[list[Connect]]:
    made: list[Connect] = []
    yield made
    for c in made:
        c.kill()


def start_connect(connects: list[Connect], laptop: Member, *args: str) -> Connect:
    c = Connect(laptop, *args)
    connects.append(c)
    return c


@SERVED
def test_ready_url_serves_jupyter_and_runs_code(
    shared: sshd_helper.Lab, connects: list[Connect]
) -> None:
    c = start_connect(connects, shared.laptop, "gpu1")
    ready = c.wait_for("ready")
    assert ready["host"] == "gpu1" and ready["url"].startswith(
        f"http://127.0.0.1:{ready['local_port']}/lab?token="
    )
    assert ready["mode"] == "socket"
    # picked below the ephemeral range, where no outgoing connection takes it before ssh binds it
    assert localports.PICK_FROM <= ready["local_port"] < localports.ephemeral_from(), ready
    lab = Lab.from_url(ready["url"])
    assert lab.call("GET", "/api/status").status == 200
    assert lab.call("GET", "/api/status", token=False).status == 403
    kernel = lab.start_kernel()
    assert lab.execute(kernel, "print(6 * 7)").strip() == "42"

    token = lab.token
    assert token
    args = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert token not in args
    assert all(token not in " ".join(argv) for _, argv in c.ssh_argvs())


@SERVED
def test_one_shared_connection_in_a_private_control_dir(
    shared: sshd_helper.Lab, connects: list[Connect]
) -> None:
    # the sshd is the group's: only this test's logins count
    before = shared.sshd.log.stat().st_size
    c = start_connect(connects, shared.laptop, "gpu1")
    c.wait_for("ready")
    kids = c.ssh_children()
    assert len(kids) == 1, [k.cmdline() for k in kids]
    argv = kids[0].cmdline()
    assert "-M" in argv and "ControlPersist=no" in argv and "ExitOnForwardFailure=yes" in argv
    assert not any("StrictHostKeyChecking" in a for a in argv)
    control = Path(
        next(a for a in argv if a.startswith("ControlPath=")).split("=", 1)[1].strip('"')
    )
    assert control.is_socket()
    assert control.parent.stat().st_mode & 0o777 == 0o700
    assert control.parent.stat().st_uid == shared.laptop.uid
    log = shared.sshd.log.read_bytes()[before:].decode()
    assert log.count("Accepted publickey") == 1, log


@SERVED
def test_killing_ssh_heals_on_the_same_port_and_keeps_kernel_state(
    shared: sshd_helper.Lab, connects: list[Connect]
) -> None:
    c = start_connect(connects, shared.laptop, "gpu1")
    assert "-M" in killed_ssh_heals(c)


def killed_ssh_heals(c: Connect) -> list[str]:
    """Kill the tunnel's ssh while a kernel holds x: the same URL comes back and x is intact.

    Returns the killed ssh's command line.
    """
    ready = c.wait_for("ready")
    lab = Lab.from_url(ready["url"])
    kernel = lab.start_kernel()
    lab.execute(kernel, "x = 41")
    (old,) = c.ssh_children()
    argv = old.cmdline()
    old.kill()
    assert c.wait_for("reconnecting")["reason"].startswith("ssh exited")
    again = c.wait_for("reconnected")
    assert again["local_port"] == ready["local_port"] and again["url"] == ready["url"]
    assert lab.execute(kernel, "print(x + 1)").strip() == "42"
    assert [p.pid for p in c.ssh_children()] != [old.pid]
    return argv


def test_a_frozen_connection_is_noticed_and_replaced(
    running: sshd_helper.Lab, connects: list[Connect]
) -> None:
    """A wifi drop or laptop sleep, as the laptop sees it: ssh stays alive but nothing comes back.

    The sshd processes serving this one connection are stopped (SIGSTOP); the
    listening sshd is not, so a new connection can be made.  ssh's own
    keep-alive is slowed to 60 s so that only labshare's probe can notice.
    """
    c = start_connect(connects, running.laptop, "-o", "ServerAliveInterval=60", "gpu1")
    ready = c.wait_for("ready")
    lab = Lab.from_url(ready["url"])
    kernel = lab.start_kernel()
    lab.execute(kernel, "x = 41")
    assert running.sshd.proc is not None
    frozen = psutil.Process(running.sshd.proc.pid).children(recursive=True)
    assert frozen
    (old,) = c.ssh_children()
    for proc in frozen:
        proc.send_signal(signal.SIGSTOP)
    try:
        assert c.wait_for("reconnecting", timeout=50)["reason"] == "the tunnel stopped answering"
        again = c.wait_for("reconnected", timeout=60)
        assert again["local_port"] == ready["local_port"]
        assert lab.execute(kernel, "print(x + 1)").strip() == "42"
        assert old.pid not in [p.pid for p in c.ssh_children()]
    finally:
        for proc in frozen:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGCONT)


@SERVED
def test_sigterm_ends_every_ssh_process_and_leaves_the_server(
    shared: sshd_helper.Lab, connects: list[Connect]
) -> None:
    c = start_connect(connects, shared.laptop, "gpu1")
    ready = c.wait_for("ready")
    kids = c.ssh_children()
    assert kids
    c.proc.send_signal(signal.SIGTERM)
    closed = c.wait_for("closed", timeout=30)
    assert closed["reason"] == "terminated"
    assert c.proc.wait(30) == 0
    _gone, alive = psutil.wait_procs(kids, timeout=10)
    assert not alive
    assert not [p for p in shared.laptop.processes() if p.name() == "ssh"]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", ready["local_port"]), timeout=5).close()
    assert shared.server.json("status")["running"] is True


def test_start_flag_starts_the_server_and_plain_connect_says_how(
    lab: sshd_helper.Lab, connects: list[Connect]
) -> None:
    done = lab.laptop.run("connect", "--no-browser", "gpu1", timeout=120)
    assert done.returncode == 3
    assert "not running on gpu1" in done.stderr and "--start" in done.stderr
    assert "Traceback" not in done.stderr

    c = start_connect(connects, lab.laptop, "--start", "gpu1")
    c.wait_for("starting")
    ready = c.wait_for("ready", timeout=240)
    assert Lab.from_url(ready["url"]).call("GET", "/api/status").status == 200
    assert lab.server.json("status")["running"] is True


def test_server_gone_is_reported_and_restarted_with_start(
    running: sshd_helper.Lab, connects: list[Connect]
) -> None:
    c = start_connect(connects, running.laptop, "--start", "gpu1")
    ready = c.wait_for("ready")
    running.server.run("stop", check=True)
    c.wait_for("reconnecting", timeout=60)
    c.wait_for("server_gone", timeout=60)
    again = c.wait_for("reconnected", timeout=240)
    assert again["local_port"] == ready["local_port"]
    assert Lab.from_url(again["url"]).call("GET", "/api/status").status == 200


def test_tcp_mode_server(lab: sshd_helper.Lab, connects: list[Connect]) -> None:
    lab.server.run("start", "--tcp", check=True)
    c = start_connect(connects, lab.laptop, "gpu1")
    ready = c.wait_for("ready")
    assert ready["mode"] == "tcp" and ready["remote"].startswith("127.0.0.1:")
    assert Lab.from_url(ready["url"]).call("GET", "/api/status").status == 200


@SERVED
def test_two_hosts_at_once_never_collide(shared: sshd_helper.Lab, connects: list[Connect]) -> None:
    sshd_helper.write_client_config(shared.laptop, shared.sshd, "gpu2", shared.server.name)
    one = start_connect(connects, shared.laptop, "gpu1")
    two = start_connect(connects, shared.laptop, "gpu2")
    a, b = one.wait_for("ready"), two.wait_for("ready")
    assert a["local_port"] != b["local_port"]
    for ready in (a, b):
        assert Lab.from_url(ready["url"]).call("GET", "/api/status").status == 200


@SERVED
def test_print_shows_plain_ssh_without_token(shared: sshd_helper.Lab) -> None:
    done = shared.laptop.run("connect", "--print", "--local-port", "18888", "gpu1", timeout=120)
    assert done.returncode == 0, done.stderr
    info = shared.server.info()
    assert info.token and info.token not in done.stdout + done.stderr
    sock = info.socket
    assert f"ssh -N -L 127.0.0.1:18888:{sock} gpu1" in done.stdout
    assert "http://127.0.0.1:18888/lab" in done.stdout


@SERVED
def test_local_port_taken(shared: sshd_helper.Lab) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        done = shared.laptop.run(
            "connect", "--no-browser", "--local-port", str(port), "gpu1", timeout=120
        )
    assert done.returncode == 2
    assert f"Local port {port} is already in use" in done.stderr and "--local-port" in done.stderr


def test_host_unreachable(lab: sshd_helper.Lab) -> None:
    lab.sshd.stop()
    done = lab.laptop.run("connect", "--no-browser", "gpu1", timeout=120)
    assert done.returncode == 4
    assert "Cannot reach gpu1 over ssh" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("level", [None, "ERROR", "QUIET"])
def test_authentication_failed(lab: sshd_helper.Lab, tmp_path: Path, level: str | None) -> None:
    """Told apart by ssh's own line, which `LogLevel QUIET` hides: connect turns it up to ERROR."""
    wrong = tmp_path / "wrong"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True)
    sshd_helper.write_client_config(
        lab.laptop,
        lab.sshd,
        "badkey",
        lab.server.name,
        key=wrong,
        extra=(f"LogLevel {level}",) if level else (),
    )
    done = lab.laptop.run("connect", "--no-browser", "badkey", timeout=120)
    assert done.returncode == 5, done.stderr
    assert "could not log in to badkey (authentication failed)" in done.stderr
    doctor = json.loads(lab.laptop.run("doctor", "badkey", "--json", timeout=240).stdout)
    reach = next(c for c in doctor["checks"] if c["name"] == "ssh-reach")
    assert reach["status"] == "fail" and "authentication failed" in reach["detail"], reach


def test_host_key_checking_is_never_skipped(lab: sshd_helper.Lab) -> None:
    known = lab.laptop.home / ".ssh/known_hosts"
    other = subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(lab.sshd.root / "other")],
        check=True,
    )
    assert other.returncode == 0
    fake = (lab.sshd.root / "other.pub").read_text().split()[:2]
    known.write_text(f"[127.0.0.1]:{lab.sshd.port} {' '.join(fake)}\n")
    done = lab.laptop.run("connect", "--no-browser", "gpu1", timeout=120)
    assert done.returncode != 0 and "host key" in done.stderr


def test_labshare_missing_on_the_server(make_user) -> None:
    gen = sshd_helper.build(make_user, with_labshare=False)
    lab = next(gen)
    try:
        done = lab.laptop.run("connect", "--no-browser", "gpu1", timeout=120)
        assert done.returncode == 7
        assert (
            "labshare is not installed on gpu1" in done.stderr
            and "run `sh scripts/install`" in done.stderr
        )
    finally:
        gen.close()


def test_per_host_config_points_at_labshare(make_user) -> None:
    gen = sshd_helper.build(make_user, with_labshare=False)
    lab = next(gen)
    try:
        sshd_helper.install_labshare(lab.server, "opt/bin")
        config = lab.laptop.home / ".config/labshare/config.toml"
        config.parent.mkdir(parents=True)
        config.write_text('[hosts.gpu1]\nlabshare = "~/opt/bin/labshare"\n')
        done = lab.laptop.run("connect", "--no-browser", "gpu1", timeout=120)
        assert done.returncode == 3 and "not running on gpu1" in done.stderr, done.stderr
        config.write_text('[hosts.gpu1]\nlabshare = "/nowhere/labshare"\n')
        done = lab.laptop.run("connect", "--no-browser", "gpu1", timeout=120)
        assert done.returncode == 7 and "not found at /nowhere/labshare" in done.stderr
    finally:
        gen.close()


@pytest.mark.parametrize(
    "rule, tcp, says",
    [
        ("AllowStreamLocalForwarding no", False, "labshare start --tcp"),
        ("DisableForwarding yes", False, "labshare start --tcp"),
        ("DisableForwarding yes", True, "does not allow port forwarding"),
    ],
)
def test_forwarding_disabled_is_explained(make_user, rule: str, tcp: bool, says: str) -> None:
    gen = sshd_helper.build(make_user, extra=(rule,))
    lab = next(gen)
    try:
        # Under LogLevel QUIET ssh never says "open failed": the refusal is known from the tunnel itself.
        sshd_helper.write_client_config(
            lab.laptop, lab.sshd, "quiet", lab.server.name, extra=("LogLevel QUIET",)
        )
        lab.server.run("start", *(["--tcp"] if tcp else []), check=True)
        for alias in ("gpu1", "quiet"):
            done = lab.laptop.run("connect", "--no-browser", alias, timeout=120)
            assert done.returncode == 6, (alias, done.stderr)
            assert says in done.stderr and "Traceback" not in done.stderr
            assert not [p for p in lab.laptop.processes() if p.name() == "ssh"]
        report = json.loads(lab.laptop.run("doctor", "quiet", "--json", timeout=240).stdout)
        forwarding = next(c for c in report["checks"] if c["name"] == "forwarding")
        assert forwarding["status"] == "fail" and "does not allow" in forwarding["detail"], (
            forwarding
        )
    finally:
        gen.close()


@SERVED
def test_user_control_master_is_respected(shared: sshd_helper.Lab, connects: list[Connect]) -> None:
    control = shared.laptop.home / ".ssh/cm-%C"
    sshd_helper.write_client_config(
        shared.laptop,
        shared.sshd,
        "muxed",
        shared.server.name,
        extra=("ControlMaster auto", f"ControlPath {control}", "ControlPersist 60"),
    )
    c = start_connect(connects, shared.laptop, "muxed")
    ready = c.wait_for("ready")
    assert Lab.from_url(ready["url"]).call("GET", "/api/status").status == 200
    assert any(e["event"] == "note" and "ControlMaster" in e["message"] for e in c.seen)
    assert not any(a.startswith("ControlPath=") for _, argv in c.ssh_argvs() for a in argv)
    c.proc.send_signal(signal.SIGTERM)
    c.wait_for("closed", timeout=30)
    subprocess.run(
        ["ssh", "-O", "exit", "muxed"],
        capture_output=True,
        user=shared.laptop.uid,
        env=shared.laptop.env,
        timeout=30,
    )


@SERVED
def test_plain_ssh_as_on_windows_connects_heals_and_cleans_up(
    shared: sshd_helper.Lab, connects: list[Connect]
) -> None:
    """Without multiplexing (Windows' OpenSSH has none) the tunnel is a plain `ssh -N -L` and the
    info call a separate ssh; a config that names a ControlPath but never makes a master gets that path here."""
    sshd_helper.write_client_config(
        shared.laptop,
        shared.sshd,
        "plain",
        shared.server.name,
        extra=("ControlMaster no", f"ControlPath {shared.laptop.home}/.ssh/none-%C"),
    )
    c = start_connect(connects, shared.laptop, "plain")
    tunnel = killed_ssh_heals(c)
    assert "-M" not in tunnel and "-N" in tunnel
    c.proc.send_signal(signal.SIGTERM)
    c.wait_for("closed", timeout=30)
    assert c.proc.wait(30) == 0
    assert (
        subprocess.run(
            ["pgrep", "-u", str(shared.laptop.uid), "-x", "ssh"], capture_output=True
        ).stdout
        == b""
    )


@pytest.mark.quick
def test_remote_command_lookup_order() -> None:
    cmd = sshcmd.remote_command(["info", "--json"])
    assert cmd.startswith("sh -c ")
    script = cmd[len("sh -c ") :]
    assert (
        script.index("command -v labshare")
        < script.index(".local/bin/labshare")
        < script.index("-lc")
    )
    assert '"$HOME"/opt/labshare' in sshcmd.remote_command(["info"], "~/opt/labshare")


@SERVED
def test_connect_and_doctor_run_without_posix_only_modules(
    shared: sshd_helper.Lab, connects: list[Connect]
) -> None:
    """Any laptop: `connect` (own master, and plain ssh as on Windows) and `doctor HOST`, end to end."""
    laptop = shared.laptop
    sshd_helper.write_client_config(
        laptop,
        shared.sshd,
        "plain",
        shared.server.name,
        extra=("ControlMaster no", f"ControlPath {laptop.home}/.ssh/none-%C"),
    )
    posix_less.refuse_posix_modules(laptop)
    for alias in ("gpu1", "plain"):
        c = start_connect(connects, laptop, alias)
        ready = c.wait_for("ready")
        (tunnel,) = [argv for _, argv in c.ssh_argvs()]
        assert ("-M" in tunnel) == (alias == "gpu1"), tunnel
        lab = Lab.from_url(ready["url"])
        assert lab.execute(lab.start_kernel(), "print(6 * 7)").strip() == "42"
        c.proc.send_signal(signal.SIGTERM)
        c.wait_for("closed", timeout=30)
        assert c.proc.wait(30) == 0, c.proc.stderr.read() if c.proc.stderr else ""
    done = laptop.run("doctor", "gpu1", "--json", timeout=240)
    report = json.loads(done.stdout)
    assert [c["status"] for c in report["checks"][:4]] == ["ok"] * 4, report
    assert "refused" not in done.stderr


@pytest.mark.parametrize("level", ["ERROR", "QUIET"])
def test_start_after_the_server_stopped_whatever_the_ssh_log_level(
    running: sshd_helper.Lab, connects: list[Connect], level: str
) -> None:
    """ssh's "open failed" is hidden under these levels: the refused forward is known from the tunnel itself."""
    sshd_helper.write_client_config(
        running.laptop, running.sshd, "quiet", running.server.name, extra=(f"LogLevel {level}",)
    )
    first = start_connect(connects, running.laptop, "--start", "quiet")
    first.wait_for("ready")
    first.close()
    running.server.run("stop", check=True)

    again = start_connect(connects, running.laptop, "--start", "quiet")
    again.wait_for("starting")
    ready = again.wait_for("ready", timeout=240)
    assert Lab.from_url(ready["url"]).call("GET", "/api/status").status == 200
    assert running.server.json("status")["running"] is True


def test_start_that_fails_there_says_why_in_one_line(lab: sshd_helper.Lab) -> None:
    """`start --json` fails on stdout; connect --start repeats that reason, not "no message"."""
    projects = lab.server.home / "projects"
    projects.write_text("not a folder\n")
    os.chown(projects, lab.server.uid, -1)
    done = lab.laptop.run("connect", "--no-browser", "--start", "gpu1", timeout=240)
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("labshare: error:")]
    assert len(errors) == 1, done.stderr
    assert (
        "Starting JupyterLab on gpu1 failed:" in errors[0]
        and "is a file, not a directory" in errors[0]
    )
    assert "no message" not in done.stderr and "Traceback" not in done.stderr


def test_info_that_fails_there_says_why_instead_of_not_running(lab: sshd_helper.Lab) -> None:
    """`info --json` fails on stdout too: its reason is shown, not "JupyterLab is not running"."""
    state = lab.server.state_dir
    state.mkdir(parents=True)
    (state / "server.json").write_text('{"version": 99, "pid": 1}')
    top = lab.server.home / ".local"
    for path in [top, *top.rglob("*")]:
        os.chown(path, lab.server.uid, -1)
        if path.is_dir():
            path.chmod(0o700)
    done = lab.laptop.run("connect", "--no-browser", "gpu1", timeout=240)
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("labshare: error:")]
    assert len(errors) == 1 and "labshare on gpu1 could not say how JupyterLab is:" in errors[0], (
        done.stderr
    )
    assert (
        "is in format 99" in errors[0]
        and "upgrade labshare" in errors[0]
        and "not running" not in done.stderr
    )
