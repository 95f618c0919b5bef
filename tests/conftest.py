"""Shared fixtures: isolated members (a HOME each, optionally their own Unix account).

Tests drive the real `labshare` command as a user would, with real processes
behind it, and every process a test starts is found again and killed by pid
at teardown (by HOME for the current user, by uid for users made here).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

BIN = Path(sys.executable).parent
LABSHARE = str(BIN / "labshare")
# Like /home: other accounts may traverse it, so only labshare's own modes protect a member.
BASE = Path(os.environ.get("LABSHARE_TEST_BASE", "/tmp/labshare-tests"))
IS_ROOT = os.geteuid() == 0


def wait_for(predicate, timeout: float = 120, what: str = "condition", every: float = 0.2):
    """Poll until `predicate()` is truthy and return it; generous by default, since CI is shared."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def kill_all(procs: list[psutil.Process], timeout: float = 10) -> None:
    """SIGKILL each process a test started (already gone is fine) and wait until they are reaped."""
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(procs, timeout=timeout)


def need_root(why: str) -> None:
    """Skip where a test cannot run; in CI (which runs as root) a skip would hide a gap, so fail."""
    if IS_ROOT:
        return
    if os.environ.get("CI"):
        pytest.fail(f"this test needs root in CI: {why}")
    pytest.skip(f"needs root: {why}")


@dataclass
class Member:
    """One lab member: a HOME of their own, and the Unix account that runs their commands."""

    home: Path
    user: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def uid(self) -> int:
        return pwd.getpwnam(self.user).pw_uid if self.user else os.getuid()

    @property
    def name(self) -> str:
        return self.user or pwd.getpwuid(os.getuid()).pw_name

    @property
    def env(self) -> dict[str, str]:
        env = {
            "HOME": str(self.home),
            "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "LANG": "C.UTF-8",
            "USER": self.name,
            "LOGNAME": self.name,
        }
        for key in ("UV_CACHE_DIR", "UV_INDEX_URL", "UV_DEFAULT_INDEX", "PIP_INDEX_URL", "SSL_CERT_FILE"):
            if key in os.environ and not self.user:
                env[key] = os.environ[key]
        env.update(self.extra_env)
        return env

    @property
    def state_dir(self) -> Path:
        import socket

        return self.home / ".local/state/labshare" / socket.gethostname()

    def state(self) -> dict:
        return json.loads((self.state_dir / "server.json").read_text())

    def _as(self) -> dict:
        if not self.user:
            return {}
        pw = pwd.getpwnam(self.user)
        return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}

    def run(
        self, *args: str, timeout: float = 180, check: bool = False, input: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `labshare ARGS` as this member and return what it printed."""
        return self.run_cmd([LABSHARE, *args], timeout=timeout, check=check, input=input, env=env)

    def run_cmd(
        self, argv: Sequence[str], timeout: float = 180, check: bool = False, input: str | None = None,
        env: dict[str, str] | None = None, cwd: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            list(argv), env={**self.env, **(env or {})}, capture_output=True, text=True, timeout=timeout,
            input=input, stdin=None if input is not None else subprocess.DEVNULL, cwd=cwd or str(self.home),
            **self._as(),
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{argv} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done

    def popen(self, argv: Sequence[str], **kwargs) -> subprocess.Popen:
        kwargs.setdefault("env", self.env)
        kwargs.setdefault("cwd", str(self.home))
        return subprocess.Popen(list(argv), **self._as(), **kwargs)

    def json(self, *args: str, timeout: float = 180) -> dict:
        done = self.run(*args, "--json", timeout=timeout)
        assert done.stdout.strip(), f"no output from {args}: {done.stderr}"
        return json.loads(done.stdout)

    def processes(self) -> list[psutil.Process]:
        """Every process started on this member's behalf (by HOME, or by uid for a test user)."""
        found = []
        for proc in psutil.process_iter(["uids", "environ"]):
            try:
                if self.user:
                    if proc.info["uids"] and proc.info["uids"].real == self.uid:
                        found.append(proc)
                elif (proc.info["environ"] or {}).get("HOME") == str(self.home) and proc.pid != os.getpid():
                    found.append(proc)
            except (psutil.Error, TypeError):
                continue
        return found

    def reap(self) -> None:
        kill_all(self.processes())


def _make_home(owner: str | None = None) -> Path:
    BASE.mkdir(mode=0o755, exist_ok=True)
    os.chmod(BASE, 0o755)
    home = BASE / uuid.uuid4().hex[:10]
    home.mkdir(mode=0o755)
    if owner:
        pw = pwd.getpwnam(owner)
        os.chown(home, pw.pw_uid, pw.pw_gid)
    return home


@pytest.fixture
def member() -> Iterator[Member]:
    """A member using the current account with an isolated, otherwise empty HOME."""
    m = Member(home=_make_home())
    try:
        yield m
    finally:
        try:
            m.run("stop", timeout=60)
        except Exception:
            pass
        m.reap()
        shutil.rmtree(m.home, ignore_errors=True)


@pytest.fixture
def make_user() -> Iterator:
    """Factory for members with their own Unix accounts, removed (with their processes) afterwards."""
    made: list[Member] = []

    def make() -> Member:
        need_root("creates Unix users")
        name = f"lst{uuid.uuid4().hex[:8]}"
        subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/bash", name], check=True)
        m = Member(home=_make_home(name), user=name)
        made.append(m)
        return m

    try:
        yield make
    finally:
        for m in made:
            m.reap()
            subprocess.run(["userdel", m.user], capture_output=True)
            shutil.rmtree(m.home, ignore_errors=True)


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temp dir other test users can traverse (pytest's own tmp_path is root-only)."""
    path = _make_home()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def lab_of(member: Member):
    """A REST/websocket client for the member's running server, from `labshare info`."""
    from jupyter_api import Lab

    from labshare import probe

    info = member.json("info")
    return Lab(probe.Address(socket=info["socket"], port=info["port"]), info["token"])
