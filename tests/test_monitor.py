"""`labshare ps`, `top` and `admin stop` against real members, servers and kernels.

Two Unix users made here each run a real labshare server with kernels
started through Jupyter's REST API; one of them also runs a Jupyter by hand,
the old way, with no token.  GPU figures come from a fake device list (a
plain function naming real kernel pids), since CI has no GPU.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psutil
import pytest
from conftest import LABSHARE, Accounts, Member, lab_of, need_root, tokenless_jupyter, wait_for
from jupyter_api import Lab

from labshare import probe
from labshare.gpus.nvml import GpuDevice, GpuReading, NoGpu, read, read_nvml
from labshare.monitor import argv as cmd
from labshare.monitor.frame import frame
from labshare.monitor.processes import Scanner, Usage

# One `site` (two members, their servers, a hand-started Jupyter) for the module: its tests stay on one worker.
pytestmark = pytest.mark.xdist_group("monitor")


@dataclass
class Site:
    alice: Member
    bob: Member
    alice_lab: Lab
    alice_kernel: str  # in session alice.ipynb
    gpu_kernel: str  # in session train.ipynb, with a child process
    gpu_child: int
    bob_kernel: str  # in session bob.ipynb
    hand_pid: int  # bob's hand-started Jupyter, no token
    hand_port: int
    hand_kernel: str


def _session(lab: Lab, path: str) -> str:
    return lab.ok(
        "POST", "/api/sessions", {"path": path, "type": "notebook", "kernel": {"name": "python3"}}
    )["kernel"]["id"]


@pytest.fixture(scope="module")
def site(module_users: Accounts) -> Iterator[Site]:
    need_root("creates Unix users")
    hand: subprocess.Popen | None = None
    try:
        alice, bob = module_users(), module_users()
        # The two first starts (each makes its member's default kernel) and Bob's hand-started Jupyter
        # wait mostly on their own processes: side by side, not one after the other.
        with ThreadPoolExecutor(4) as pool:
            starts = [pool.submit(m.run, "start", timeout=240) for m in (alice, bob)]
            started = pool.submit(tokenless_jupyter, bob).result()
            hand, port = started.proc, started.port
            for done in (s.result() for s in starts):
                assert done.returncode == 0, done.stderr
            alice_lab, bob_lab = lab_of(alice), lab_of(bob)
            # Each kernel start waits on its own kernel too.
            kernels = [
                pool.submit(_session, alice_lab, "alice.ipynb"),
                pool.submit(_session, alice_lab, "train.ipynb"),
                pool.submit(_session, bob_lab, "bob.ipynb"),
                pool.submit(Lab(probe.Address(port=port), None).start_kernel),
            ]
            alice_kernel, gpu_kernel, bob_kernel, hand_kernel = (k.result() for k in kernels)
        child = int(
            alice_lab.execute(
                gpu_kernel,
                "import subprocess; p = subprocess.Popen(['sleep', '900']); print(p.pid)",
            ).strip()
        )
        yield Site(
            alice,
            bob,
            alice_lab,
            alice_kernel,
            gpu_kernel,
            child,
            bob_kernel,
            hand.pid,
            port,
            hand_kernel,
        )
    finally:
        if hand is not None:
            hand.kill()
            hand.wait(timeout=30)


def _kernel(servers: list[dict], kernel_id: str) -> tuple[dict, dict]:
    for server in servers:
        for kernel in server["kernels"]:
            if kernel.get("kernel_id") == kernel_id:
                return server, kernel
    raise AssertionError(f"kernel {kernel_id} not in ps: {json.dumps(servers)[:2000]}")


def _ps_with(
    m: Member | None, *kernel_ids: str, args: tuple[str, ...] = ("--all-users",)
) -> list[dict]:
    """`ps --json` (as `m`, or as root), once every named kernel is listed (kernels take a moment)."""

    def listed() -> list[dict] | None:
        if m is None:
            done = subprocess.run(
                [LABSHARE, "ps", "--json", *args],
                capture_output=True,
                text=True,
                timeout=60,
                stdin=subprocess.DEVNULL,
            )
        else:
            done = m.run("ps", "--json", *args, timeout=60)
        assert done.returncode == 0, done.stderr
        servers = json.loads(done.stdout)
        ids = {k.get("kernel_id") for s in servers for k in s["kernels"]}
        return servers if set(kernel_ids) <= ids else None

    return wait_for(listed, timeout=120, what=f"kernels {kernel_ids} in ps", every=1.0)


def test_ps_lists_everyones_servers_with_users_memory_and_own_notebooks(site: Site) -> None:
    servers = _ps_with(site.alice, site.alice_kernel, site.bob_kernel, site.hand_kernel)
    for s in servers:
        for key in (
            "user",
            "pid",
            "managed",
            "mode",
            "port",
            "socket",
            "started_at",
            "cpu_percent",
            "memory_bytes",
            "gpu_memory_bytes",
            "kernels",
            "token_required",
        ):
            assert key in s
        for k in s["kernels"]:
            for key in (
                "pid",
                "name",
                "notebook",
                "cpu_percent",
                "memory_bytes",
                "gpu_memory_bytes",
            ):
                assert key in k

    a_server, a_kernel = _kernel(servers, site.alice_kernel)
    b_server, b_kernel = _kernel(servers, site.bob_kernel)
    assert (a_server["user"], b_server["user"]) == (site.alice.user, site.bob.user)
    assert (
        a_server["managed"]
        and b_server["managed"]
        and a_server["mode"] == b_server["mode"] == "socket"
    )
    assert a_server["pid"] == site.alice.state().pid and b_server["pid"] == site.bob.state().pid
    assert a_server["supervisor_pid"] == site.alice.state().supervisor_pid
    assert a_server["token_required"] is True

    # Alice sees her own notebooks and kernel names, never Bob's.
    assert a_kernel["notebook"] == "alice.ipynb" and a_kernel["name"] == "python3"
    assert _kernel(servers, site.gpu_kernel)[1]["notebook"] == "train.ipynb"
    assert b_kernel["notebook"] is None
    assert all(
        k["notebook"] is None for s in servers if s["user"] != site.alice.user for k in s["kernels"]
    )
    assert site.bob.state_dir.name not in json.dumps(b_server.get("notes"))

    # Memory is the processes' own: each kernel's RSS, and the server's total is its parts added up.
    rss = psutil.Process(a_kernel["pid"]).memory_info().rss
    assert 0.6 * rss <= a_kernel["memory_bytes"] <= 1.6 * rss
    assert a_server["memory_bytes"] == a_server["server_memory_bytes"] + sum(
        k["memory_bytes"] for k in a_server["kernels"]
    )
    jupyter_rss = psutil.Process(a_server["pid"]).memory_info().rss
    assert a_server["server_memory_bytes"] >= 0.6 * jupyter_rss
    assert len(a_server["kernels"]) == 2 and len(b_server["kernels"]) == 1


def test_ps_shows_only_your_own_servers_by_default(site: Site) -> None:
    servers = _ps_with(site.alice, site.alice_kernel, args=())
    assert servers and {s["user"] for s in servers} == {site.alice.user}


def test_root_sees_every_notebook(site: Site) -> None:
    servers = _ps_with(None, site.alice_kernel, site.bob_kernel)
    assert _kernel(servers, site.alice_kernel)[1]["notebook"] == "alice.ipynb"
    assert _kernel(servers, site.bob_kernel)[1]["notebook"] == "bob.ipynb"


def test_hand_started_jupyter_is_unmanaged_with_no_token(site: Site) -> None:
    servers = _ps_with(site.alice, site.hand_kernel)
    hand, kernel = _kernel(servers, site.hand_kernel)
    assert hand["pid"] == site.hand_pid and hand["user"] == site.bob.user
    assert hand["managed"] is False and hand["token_required"] is False
    assert hand["mode"] == "tcp" and hand["port"] == site.hand_port
    assert kernel["notebook"] is None  # Alice may not read Bob's notebooks, token or not

    text = site.alice.run("ps", "--all-users", timeout=60)
    assert text.returncode == 0, text.stderr
    row = next(line for line in text.stdout.splitlines() if str(site.hand_pid) in line)
    assert "unmanaged" in row and "NO TOKEN" in row and f"127.0.0.1:{site.hand_port}" in row
    assert "has no token" in text.stdout


def test_ps_never_prints_a_token(site: Site) -> None:
    token = (site.alice.state_dir / "token").read_text().strip()
    for args in (("--all-users",), ("--all-users", "--json")):
        done = site.alice.run("ps", *args, timeout=60)
        assert done.returncode == 0 and token not in done.stdout + done.stderr


def test_fake_gpu_memory_lands_on_the_right_kernel_and_notebook(site: Site) -> None:
    _ps_with(None, site.gpu_kernel)
    kernel_pid = next(
        k["pid"]
        for s in _ps_with(None, site.gpu_kernel)
        for k in s["kernels"]
        if k["kernel_id"] == site.gpu_kernel
    )

    def devices() -> list[GpuDevice]:
        return [
            GpuDevice(
                0,
                "Fake A100",
                97,
                30 << 30,
                80 << 30,
                {kernel_pid: 6 << 30, site.gpu_child: 2 << 30},
            ),
            GpuDevice(1, "Fake A100", 0, 1 << 30, 80 << 30, {site.gpu_child: None}),
        ]

    snap = Scanner(all_users=True, gpu=devices).scan()
    server = next(s for s in snap.servers if s.user == site.alice.user and s.managed)
    kernel = next(k for k in server.kernels if k.kernel_id == site.gpu_kernel)
    assert kernel.notebook == "train.ipynb"
    assert kernel.gpu_memory_bytes == 8 << 30  # the kernel and the process it started
    assert kernel.gpus == [0, 1]
    other = next(k for k in server.kernels if k.kernel_id == site.alice_kernel)
    assert other.gpu_memory_bytes == 0
    assert server.gpu_memory_bytes == 8 << 30 and server.gpus == [0, 1]
    bob = next(s for s in snap.servers if s.user == site.bob.user and s.managed)
    assert bob.gpu_memory_bytes == 0

    from labshare.render import monitor as view

    text = view.ps(snap)
    assert "Fake A100" in text and "97 %" in text and "8.0 GiB" in text
    gpu0 = next(line for line in text.splitlines() if line.startswith("0 ") and "Fake A100" in line)
    assert site.alice.user in gpu0 and site.bob.user not in gpu0
    top = frame(snap, "gpu")
    assert top.servers[0] is server and top.cards[0].users == [site.alice.user]
    assert (top.cards[0].name, top.cards[0].utilization_percent) == ("Fake A100", 97)


def test_no_gpu_driver_ps_still_works_and_says_so(site: Site) -> None:
    reading = read(read_nvml)
    if reading.unavailable is None:
        pytest.skip("this machine has a working NVIDIA driver")
    assert reading.devices == []
    servers = _ps_with(site.alice, site.alice_kernel)
    assert all(s["gpu_memory_bytes"] is None for s in servers)
    assert all(k["gpu_memory_bytes"] is None for s in servers for k in s["kernels"])
    text = site.alice.run("ps", timeout=60)
    assert text.returncode == 0, text.stderr
    assert "GPUs: " in text.stdout and ("no GPU" in text.stdout or "n/a" in text.stdout)


@pytest.mark.quick
def test_a_reader_that_fails_is_reported_not_raised() -> None:
    def broken() -> list[GpuDevice]:
        raise NoGpu("no GPU: the NVIDIA driver does not answer (Driver Not Loaded)")

    assert read(broken) == GpuReading(
        devices=[], unavailable="no GPU: the NVIDIA driver does not answer (Driver Not Loaded)"
    )


def test_top_once_and_without_a_terminal_prints_the_table(site: Site) -> None:
    _ps_with(site.alice, site.alice_kernel, args=())
    for args in (("top", "--once"), ("top",), ("top", "--iterations", "2", "--interval", "0.5")):
        done = site.alice.run(*args, timeout=60)
        assert done.returncode == 0, done.stderr
        assert (
            "USER" in done.stdout
            and site.alice.user in done.stdout
            and "alice.ipynb" in done.stdout
        )
    assert done.stdout.count("NOTEBOOK") == 2


def test_top_json_prints_a_snapshot_a_line_whose_servers_are_ps_json(site: Site) -> None:
    servers = _ps_with(site.alice, site.alice_kernel, args=())
    done = site.alice.run(
        "top", "--json", "--iterations", "2", "--interval", "0.5", "--sort", "cpu", timeout=60
    )
    assert done.returncode == 0, done.stderr
    frames = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(frames) == 2 and all(f["sort"] == "cpu" for f in frames)
    assert set(frames[0]) == {"taken_at", "sort", "servers", "cards", "gpu_unavailable", "unleased"}
    assert [set(s) for s in frames[1]["servers"]] == [set(s) for s in servers]
    _, kernel = _kernel(frames[1]["servers"], site.alice_kernel)
    assert kernel["notebook"] == "alice.ipynb"
    follower = site.alice.popen(
        [LABSHARE, "top", "--json", "--interval", "0.5"], stdout=subprocess.PIPE, text=True
    )
    try:
        for _ in range(3):  # until Ctrl-C, a line every interval
            assert json.loads(follower.stdout.readline())["servers"]
    finally:
        follower.terminate()
        follower.wait(timeout=30)


def test_top_json_once_is_one_line(member: Member) -> None:
    done = member.run("top", "--json", "--once", timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1 and isinstance(json.loads(done.stdout)["servers"], list)


def test_admin_stop_refuses_a_member(site: Site) -> None:
    done = site.alice.run("admin", "stop", site.bob.user or "", "--yes", timeout=60)
    assert done.returncode != 0
    assert "needs root" in done.stderr and "sudo labshare admin stop" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert psutil.pid_exists(site.bob.state().pid or 0)


def test_admin_stop_as_root_stops_a_members_server_and_hand_started_jupyter(
    make_user: Accounts,
) -> None:
    need_root("creates a Unix user and stops their server")
    carol = make_user()
    hand = None
    try:
        with ThreadPoolExecutor(2) as pool:
            start = pool.submit(carol.run, "start", "--tcp", timeout=240)
            hand = pool.submit(tokenless_jupyter, carol).result().proc
            assert start.result().returncode == 0
        lab = lab_of(carol)
        kernel_id = _session(lab, "forgotten.ipynb")
        servers = _ps_with(None, kernel_id)
        mine = [s for s in servers if s["user"] == carol.user]
        assert len(mine) == 2
        pids = {
            p
            for s in mine
            for p in (s["pid"], s["supervisor_pid"], *(k["pid"] for k in s["kernels"]))
            if p
        }

        asked = subprocess.run(
            [LABSHARE, "admin", "stop", carol.user or ""],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )
        assert asked.returncode != 0 and "--yes" in asked.stderr
        assert all(psutil.pid_exists(p) for p in pids)

        done = subprocess.run(
            [LABSHARE, "admin", "stop", carol.user or "", "--yes", "--json"],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["stopped"] is True and result["left"] == []
        assert {k["notebook"] for s in result["found"] for k in s["kernels"]} >= {"forgotten.ipynb"}
        assert any(not s["managed"] for s in result["found"])
        wait_for(
            lambda: not any(_alive_as(p, carol) for p in pids),
            timeout=30,
            what="carol's processes to end",
        )
        assert not (carol.state_dir / "server.json").exists()
        assert not (carol.state_dir / "token").exists()
        assert not list((carol.state_dir / "kernels").glob("*.json"))
        assert hand.wait(timeout=30) is not None

        again = subprocess.run(
            [LABSHARE, "admin", "stop", carol.user or "", "--yes"],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )
        assert again.returncode == 0 and "has no Jupyter server" in again.stdout
    finally:
        if hand is not None and hand.poll() is None:
            hand.kill()
            hand.wait(timeout=30)


@pytest.mark.root
def test_admin_stop_unknown_user_is_one_clear_line() -> None:
    need_root("admin stop runs as root")
    done = subprocess.run(
        [LABSHARE, "admin", "stop", "no-such-user-xyz", "--yes"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert done.returncode != 0 and "no user named 'no-such-user-xyz'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def _alive_as(pid: int, m: Member) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.uids().real == m.uid and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@pytest.mark.parametrize(
    "argv,kind",
    [
        (["/venv/bin/python", "/venv/bin/jupyter-lab", "--no-browser"], "lab"),
        (["/venv/bin/python", "/venv/bin/jupyter", "lab", "--port=9999"], "lab"),
        (["python3", "-m", "jupyterlab"], "lab"),
        (["python3", "-m", "jupyter", "server"], "server"),
        (["/venv/bin/python", "-m", "labshare.jupyterside.lab", "--no-browser"], "lab"),
        (["/venv/bin/python", "-m", "labshare.jupyterside.lab", "--version"], None),
        # A server started before the launcher moved restarts under its former name, and is still a Lab server.
        (["/venv/bin/python", "-m", "labshare.server.lab", "--no-browser"], "lab"),
        (["/venv/bin/python", "/venv/bin/jupyter-notebook"], "notebook"),
        # A subcommand is only ever the first argument (as traitlets parses it): a folder named build is served.
        (["/venv/bin/python", "/venv/bin/jupyter-lab", "--notebook-dir", "build"], "lab"),
        (["/venv/bin/python", "/venv/bin/jupyter-lab", "build"], None),
        (["/venv/bin/python", "/venv/bin/jupyter", "lab", "build", "--minimize=False"], None),
        (["python3", "-m", "jupyterlab", "clean"], None),
        (["/venv/bin/python", "/venv/bin/jupyter-server", "list"], None),
        (["/venv/bin/python", "/venv/bin/jupyter-lab", "--version"], None),
        (["/venv/bin/python", "/venv/bin/jupyter-lab", "--debug", "--help"], None),
        (["python3", "-m", "labshare.server.supervise"], None),
        (["/venv/bin/python", "-m", "ipykernel_launcher", "-f", "/run/kernel-1.json"], None),
    ],
)
@pytest.mark.quick
def test_one_reading_of_a_command_line_tells_servers_from_tools(
    argv: list[str], kind: str | None
) -> None:
    assert cmd.server_kind(argv) == kind


@pytest.mark.quick
def test_command_line_options_in_every_form_jupyter_takes() -> None:
    opts = cmd.options(
        [
            "jupyter-lab",
            "--ServerApp.port",
            "8890",
            "--IdentityProvider.token=",
            "--no-browser",
            "--ServerApp.root_dir=/srv/x",
            "--sock",
            "/tmp/j.sock",
        ]
    )
    assert cmd.listen_port(opts) == 8890 and cmd.listen_socket(opts) == "/tmp/j.sock"
    assert cmd.root_dir(opts) == "/srv/x" and cmd.token_required(opts) is False
    assert cmd.token_required(cmd.options(["jupyter-lab", "--ServerApp.token=''"])) is False
    assert cmd.token_required(cmd.options(["jupyter-lab", "--IdentityProvider.token=abc"])) is True
    assert cmd.token_required(cmd.options(["jupyter-lab"])) is None
    assert (
        cmd.kernel_id(
            cmd.connection_file(["python", "-m", "ipykernel_launcher", "-f", "/r/kernel-ab-1.json"])
        )
        == "ab-1"
    )


@pytest.mark.quick
def test_usage_adds_up_and_no_gpu_figure_stays_unknown() -> None:
    own = Usage(cpu_percent=1.25, memory_bytes=100, gpu_memory_bytes=0, gpus=[])
    kernel = Usage(cpu_percent=2.5, memory_bytes=50, gpu_memory_bytes=8, gpus=[1, 0])
    assert Usage.total([own, kernel]) == Usage(
        cpu_percent=3.8, memory_bytes=150, gpu_memory_bytes=8, gpus=[0, 1]
    )
    assert Usage.total([Usage(), kernel]).gpu_memory_bytes is None
