"""Shared fixtures: isolated members (a HOME each, optionally their own Unix account).

Tests drive the real `labshare` command as a user would, with real processes
behind it, and every process a test starts is found again and killed by pid
at teardown (by HOME for the current user, by uid for users made here).

Each helper the tests repeat lives here once: members and test accounts, the
sshd lab, free ports, waiting for an event, site files, the hand-started
token-less Jupyter.  Nothing here is fixed per machine (a port, a name, a
path), so xdist workers run side by side; a test that makes Unix users is
marked `root` here, the other markers are set where the need shows.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import psutil
import pytest
from host_env import index_and_trust

from labshare.records.info import ServerInfo
from labshare.records.server import ServerState

if TYPE_CHECKING:
    import sshd


def free_port(host: str = "127.0.0.1") -> int:
    """The tests' one way to find a free port: from the ephemeral range, which labshare's own pick avoids."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


BIN = Path(sys.executable).parent
LABSHARE = str(BIN / "labshare")
# Like /home: other accounts may traverse it, so only labshare's own modes protect a member.
BASE = Path(os.environ.get("LABSHARE_TEST_BASE", "/tmp/labshare-tests"))
# One uv cache for every test that makes environments: uv locks it, so workers share it safely.
UV_CACHE = Path(os.environ.get("LABSHARE_TEST_UV_CACHE", "/tmp/labshare-tests-uv-cache"))
IS_ROOT = os.geteuid() == 0


T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 120,
    what: str = "condition",
    every: float = 0.2,
    ignoring: tuple[type[BaseException], ...] = (),
) -> T:
    """Poll until `predicate()` is truthy and return it; generous by default, since CI is shared.

    Only the exceptions named in `ignoring` mean "not yet" (a server not
    listening is OSError); any other one fails the test at once.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except ignoring:
            value = None
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


def processes_of(uids: set[int]) -> list[psutil.Process]:
    """Every process whose real uid is one of `uids`: a test account's processes, whoever started them."""
    found = []
    for proc in psutil.process_iter(["uids"]):
        uids_now = proc.info["uids"]
        if uids_now is not None and uids_now.real in uids:
            found.append(proc)
    return found


# A `quick` test is pure: it starts no process, opens no socket, makes no user and needs no root, so
# scripts/test can run the lot first, as an unprivileged account, in seconds.  These fixtures make
# members, users or compiled stubs; a quick test that names one fails before it starts, and one
# whose body starts a process or opens a socket fails there (an audit hook, active only in its call).
NOT_QUICK_FIXTURES = frozenset(
    {"member", "make_user", "module_users", "lab", "shared_tmp", "nvml_stub", "fake_nvml"}
)
_NOT_QUICK_EVENTS = frozenset(
    {
        "subprocess.Popen",
        "os.system",
        "os.fork",
        "os.forkpty",
        "os.posix_spawn",
        "os.spawn",
        "os.exec",
        "pty.spawn",
        "socket.connect",
        "socket.bind",
    }
)
_in_quick_test = False


def _refuse_in_quick_test(event: str, args: tuple) -> None:
    if _in_quick_test and event in _NOT_QUICK_EVENTS:
        raise RuntimeError(
            f"a test marked `quick` must start no process and open no socket, and this one "
            f"did ({event}): take the marker off, or the call out"
        )


sys.addaudithook(_refuse_in_quick_test)


def need_root(why: str) -> None:
    """Skip where a test cannot run; in CI (which runs as root) a skip would hide a gap, so fail."""
    if _in_quick_test:
        pytest.fail(
            f"a test marked `quick` runs as an ordinary user, and this one needs root: {why}"
        )
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
        env.update(index_and_trust())
        # A warm cache makes each first start's default kernel hard links, not 8,000 new files to write
        # and delete; a second account cannot write to it.
        if not self.user:
            env["UV_CACHE_DIR"] = str(UV_CACHE)
        env.update(self.extra_env)
        return env

    @property
    def state_dir(self) -> Path:
        import socket

        return self.home / ".local/state/labshare" / socket.gethostname()

    def state(self) -> ServerState:
        path = self.state_dir / "server.json"
        return ServerState.from_json(json.loads(path.read_text()), f"the state file {path}")

    def info(self) -> ServerInfo:
        """What `labshare info --json` says, read as the laptop reads it."""
        return ServerInfo.from_json(self.json("info"), "`labshare info --json`")

    def _as(self) -> dict:
        if not self.user:
            return {}
        pw = pwd.getpwnam(self.user)
        return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}

    def run(
        self,
        *args: str,
        timeout: float = 180,
        check: bool = False,
        input: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `labshare ARGS` as this member and return what it printed."""
        return self.run_cmd([LABSHARE, *args], timeout=timeout, check=check, input=input, env=env)

    def run_cmd(
        self,
        argv: Sequence[str],
        timeout: float = 180,
        check: bool = False,
        input: str | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            list(argv),
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            cwd=cwd or str(self.home),
            **self._as(),
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"{argv} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
            )
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
        if self.user:
            return processes_of({self.uid})
        found = []
        for proc in psutil.process_iter(["environ"]):
            try:
                if (proc.info["environ"] or {}).get("HOME") == str(
                    self.home
                ) and proc.pid != os.getpid():
                    found.append(proc)
            except (psutil.Error, TypeError):
                continue
        return found

    def reap(self) -> None:
        kill_all(self.processes())


class _Trash:
    """Folders a test is done with, moved aside at once and deleted on one thread of their own.

    A member's home holds environments of ~9,000 files each (twenty of them in
    test_envs.py), and deleting is slow on a disk mounted with `discard`: the
    test's worker goes on meanwhile, and the session's end waits for the lot.
    """

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None

    def discard(self, path: Path) -> None:
        trash = BASE / f".trash-{uuid.uuid4().hex[:10]}"
        try:
            path.rename(trash)  # BASE is on the same file system as every folder put here
        except OSError:
            shutil.rmtree(path, ignore_errors=True)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="labshare-tests-trash")
        self._pool.submit(shutil.rmtree, trash, ignore_errors=True)

    def empty(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


trash = _Trash()


def pytest_sessionfinish() -> None:
    trash.empty()


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
        with contextlib.suppress(
            subprocess.TimeoutExpired
        ):  # a stop that hangs is ended by the reap
            m.run("stop", timeout=60)
        m.reap()
        trash.discard(m.home)


class Accounts:
    """Members with Unix accounts of their own, made on call; leaving the block ends their processes and accounts."""

    def __init__(self) -> None:
        self.made: list[Member] = []

    def __call__(self) -> Member:
        need_root("creates Unix users")
        name = f"lst{uuid.uuid4().hex[:8]}"
        subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/bash", name], check=True)
        m = Member(home=_make_home(name), user=name)
        self.made.append(m)
        return m

    def __enter__(self) -> Accounts:
        return self

    def __exit__(self, *exc: object) -> None:
        kill_all(
            processes_of({m.uid for m in self.made})
        )  # one pass over the process table for them all
        for m in self.made:
            subprocess.run(["userdel", m.user or ""], capture_output=True)
            trash.discard(m.home)
        # The next account made here may get a deleted one's uid; labshare's names are cached by uid.
        from labshare.users import user_name

        user_name.cache_clear()


@pytest.fixture
def make_user() -> Iterator[Accounts]:
    """Factory for members with their own Unix accounts, removed (with their processes) afterwards."""
    with Accounts() as accounts:
        yield accounts


@pytest.fixture(scope="module")
def module_users() -> Iterator[Accounts]:
    """`make_user` for a module-scoped fixture: the accounts outlive one test and go with the module."""
    with Accounts() as accounts:
        yield accounts


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temp dir other test users can traverse (pytest's own tmp_path is root-only)."""
    path = _make_home()
    try:
        yield path
    finally:
        trash.discard(path)


def own_python3(member: Member) -> None:
    """A `python3` spec of the member's own, on the test venv (which has ipywidgets): labshare keeps it
    as it is, and their first start then makes no default kernel.

    The default kernel (an environment of ~20,000 files for each new account,
    made and deleted again, with ipykernel only) is test_default_kernel.py's
    business; labshare's provisioner leases every kernel its server starts,
    whatever the spec.
    """
    spec = member.home / ".local/share/jupyter/kernels/python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (test venv)",
                "language": "python",
            }
        )
    )
    for path in (spec / "kernel.json", spec, *spec.parents[: -len(member.home.parts)]):
        os.chown(path, member.uid, -1)


def lab_of(member: Member):
    """A REST/websocket client for the member's running server, from `labshare info`."""
    from jupyter_api import Lab

    from labshare import probe

    info = member.json("info")
    return Lab(probe.Address(socket=info["socket"], port=info["port"]), info["token"])


def site_file(where: Path, text: str) -> Path:
    """A site config (what /etc/labshare/config.toml holds) at `where`, readable by every account."""
    path = where / "site.toml"
    path.write_text(text)
    path.chmod(0o644)
    return path


@dataclass
class HandStarted:
    """A Jupyter started by hand, the old guide's way: no token, on a TCP port of 127.0.0.1."""

    proc: subprocess.Popen
    port: int


def tokenless_jupyter(m: Member) -> HandStarted:
    """`jupyter lab --IdentityProvider.token=''` as `m`, returned once it answers; the caller ends it."""
    from jupyter_api import Lab

    from labshare import probe

    port = free_port()
    proc = m.popen(
        [
            str(BIN / "jupyter-lab"),
            "--no-browser",
            "--IdentityProvider.token=",
            "--ServerApp.password=",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={m.home}",
            "--ServerApp.disable_check_xsrf=True",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    lab = Lab(probe.Address(port=port), None)

    def answers() -> bool:
        assert proc.poll() is None, f"the hand-started jupyter lab exited with {proc.returncode}"
        return lab.call("GET", "/api/status", token=False).status == 200

    try:
        wait_for(answers, timeout=180, what="the hand-started Jupyter", ignoring=(OSError,))
    except BaseException:
        proc.kill()
        proc.wait(30)
        raise
    return HandStarted(proc, port)


@pytest.fixture
def lab(make_user: Accounts) -> Iterator[sshd.Lab]:
    """A server account and a laptop account with a real sshd between them (see tests/sshd.py)."""
    import sshd  # not at the top: sshd imports this module

    yield from sshd.build(make_user)


@pytest.fixture(scope="module")
def served(module_users: Accounts) -> Iterator[sshd.Lab]:
    """One server account, its sshd and its running server, for a module's tests that leave all three
    as they are; mark those tests one xdist group, so that one worker boots this once."""
    import sshd

    built = sshd.build(module_users)
    lab = next(built)
    try:
        lab.server.run("start", check=True)
        yield lab
    finally:
        built.close()


@pytest.fixture
def shared(served: sshd.Lab, make_user: Accounts) -> sshd.Lab:
    """`served` from a laptop account of this test's own: what connect keeps on the laptop stays with it."""
    import sshd

    laptop = make_user()
    sshd.adopt_home(laptop)
    sshd.write_client_config(laptop, served.sshd, "gpu1", served.server.name)
    return sshd.Lab(sshd=served.sshd, server=served.server, laptop=laptop)


def _part(item: pytest.Item) -> str:
    if item.get_closest_marker("quick"):
        return "quick"
    return "alone" if item.get_closest_marker("alone") else "parallel"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark `root` every test whose fixtures make Unix users, keep one part of the run, slow tests first.

    scripts/test runs the suite in three parts (LABSHARE_TEST_PART): `quick`,
    the pure tests, as an ordinary user; `alone`, the tests that read every
    account on the host (hub-config lists each one with labshare state, which
    another worker's sshd lab would add), one by one; then `parallel`, the
    rest on xdist workers.  xdist hands tests out
    in collection order, so a long test that starts last would keep one
    worker busy after the others are done.  First among the hooks, so
    xdist's own sees the result.
    """
    for item in items:
        if {"make_user", "module_users"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.root)
    part = os.environ.get("LABSHARE_TEST_PART")
    if part in ("quick", "parallel", "alone"):
        kept = [item for item in items if _part(item) == part]
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A `quick` test's body runs with the audit hook above armed."""
    global _in_quick_test
    _in_quick_test = item.get_closest_marker("quick") is not None
    try:
        yield
    finally:
        _in_quick_test = False


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fail a test xdist should have grouped and did not: its module's fixtures would run on every worker.

    And fail a `quick` test that would make members or users, or needs root, before its fixtures run.
    """
    if item.get_closest_marker("quick"):
        named = sorted(NOT_QUICK_FIXTURES & set(getattr(item, "fixturenames", ())))
        if named or item.get_closest_marker("root"):
            pytest.fail(
                f"a test marked `quick` may not {'use ' + ', '.join(named) if named else 'need root'}: "
                "take the marker off"
            )
    if (
        getattr(item.config.option, "loadgroup", False)
        and item.get_closest_marker("xdist_group")
        and "@" not in item.nodeid
    ):
        pytest.fail(
            "--dist loadgroup did not group this test (see the pytest pin in pyproject.toml)"
        )
