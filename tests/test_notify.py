"""Notices for real: apprise against real endpoints on 127.0.0.1, real members, root's real spool service.

One HTTP receiver (apprise's `json://` and `ntfy://` post to it) and one
aiosmtpd (for `mailto://`) serve the module, told apart by path and
recipient.  A member's own channel is set with the real CLI and sent by
the real sender process; "down" is the receiver not running on its port,
"up" is it started there.  The lab's channels are root's service, started
as `labshare admin notices serve`, with two real Unix members beside it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import lab_outputs as lo
import psutil
import pytest
from conftest import LABSHARE, Accounts, Member, free_port, site_file, wait_for
from fake_gpus import FakeNvml, GpuProc, fake_nvml, leases_dir, nvml_stub
from notify_endpoints import Endpoint, mail_text
from test_gpu_kernels import kernel_pid, leased_site

from labshare.gpus import leases
from labshare.notify import events
from labshare.paths import Paths

HOST = socket.gethostname()


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    where = tmp_path_factory.mktemp("http")
    endpoint = Endpoint("http", free_port(), where / "got.jsonl").start()
    try:
        yield endpoint
    finally:
        endpoint.stop()


@pytest.fixture(scope="module")
def smtp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    where = tmp_path_factory.mktemp("smtp")
    endpoint = Endpoint("smtp", free_port(), where / "got.jsonl").start()
    try:
        yield endpoint
    finally:
        endpoint.stop()


def at(endpoint: Endpoint, prefix: str) -> list[str]:
    """What came to paths under `prefix` (json://), or to topic `prefix` (ntfy://)."""
    found = []
    for entry in endpoint.received():
        body = json.loads(entry["body"])
        if entry["path"].startswith(prefix) or body.get("topic") == prefix.strip("/"):
            found.append(body["message"])
    return found


def types_at(endpoint: Endpoint, prefix: str) -> dict[str, str]:
    """Each json:// notice under `prefix`, by its text: apprise's type, which a chat or phone shows."""
    bodies = [json.loads(e["body"]) for e in endpoint.received() if e["path"].startswith(prefix)]
    return {body["message"]: body["type"] for body in bodies}


def mail_to(endpoint: Endpoint, address: str) -> list[str]:
    return [mail_text(entry["body"]) for entry in endpoint.received() if address in entry["to"]]


def took(notice: str) -> int:
    """The seconds a notice says a cell or command ran (its whole seconds; no upper bound is
    checked, since a loaded machine runs it longer)."""
    found = re.search(r" after (?:(\d+) min )?(\d+) s", notice)
    assert found, notice
    return int(found.group(1) or 0) * 60 + int(found.group(2))


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("labshare: error: "), done.stderr
    return lines[0]


def check(member: Member, name: str) -> dict:
    report = json.loads(member.run("doctor", "--json").stdout)
    (found,) = [c for c in report["checks"] if c["name"] == name]
    return found


def hand_started_lab(member: Member, where: Path, said: Callable[[], list[str]]) -> None:
    """A Lab started by hand (not by labshare), its kernel run by a websocket client as VS Code runs
    one: the notice of a long cell comes all the same, from labshare's extension in that Lab."""
    from jupyter_api import Lab

    from labshare import probe

    port, token, log = free_port(), uuid.uuid4().hex, where / "hand-lab.log"
    with open(log, "w") as out:
        proc = member.popen(
            [str(Path(LABSHARE).parent / "jupyter-lab"), "--no-browser", "--allow-root"]
            + ["--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}"]
            + [f"--ServerApp.root_dir={member.home}"],
            env={**member.env, "JUPYTER_TOKEN": token},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
    try:
        lab = Lab(probe.Address(port=port), token)
        wait_for(lambda: lab.call("GET", "/api/status").status == 200, 120, ignoring=(OSError,))
        kernel = lab.ok(
            "POST",
            "/api/sessions",
            {
                "path": "hand.ipynb",
                "name": "hand.ipynb",
                "type": "notebook",
                "kernel": {"name": "python3"},
            },
        )["kernel"]["id"]
        wait_for(lambda: f"watching the cells of kernel {kernel}" in log.read_text(), 120)
        lab.execute(kernel, "import time; time.sleep(1.2)")
        (told,) = wait_for(lambda: [m for m in said() if "hand.ipynb cell finished" in m], 60)
        assert told.startswith(f"{member.name}@{HOST}: hand.ipynb cell finished after ")
        assert took(told) >= 1
    finally:
        proc.terminate()
        proc.wait(60)


def test_a_members_own_channel_json_ntfy_mail_and_run_and_a_burst_while_it_is_down_comes_once(
    member: Member,
    http: Endpoint,
    smtp: Endpoint,
    fake_nvml: FakeNvml,
    leases_dir: Path,
    shared_tmp: Path,
) -> None:
    site = site_file(shared_tmp, f'[gpus]\nassign = "per-kernel"\nleases_dir = "{leases_dir}"\n')
    member.extra_env.update({"LABSHARE_SITE_CONFIG": str(site), **fake_nvml.env})
    line = one_line_error(member.run("notify", "set", "bogus://nothing"))
    assert "'bogus' is not an apprise URL" in line

    member.run(
        "notify", "set", f"json://127.0.0.1:{http.port}/m1", "--min-duration", "1s", check=True
    )
    mine = member.home / ".config/labshare/config.toml"
    assert stat.S_IMODE(mine.stat().st_mode) == 0o600
    assert "own: delivered" in member.run("notify", "test", check=True).stdout
    assert any("test notice" in m for m in at(http, "/m1"))

    done = member.run("run", "--", "sh", "-c", "sleep 2; exit 3")
    assert done.returncode == 3, done.stderr
    (ran,) = wait_for(lambda: [m for m in at(http, "/m1") if "exit status 3" in m], 30)
    user = member.name
    assert ran.startswith(f"{user}@{HOST}: `sh -c 'sleep 2; exit 3'` failed (exit status 3) after ")
    assert ran.endswith(f"labshare connect {user}@{HOST}") and took(ran) >= 2
    types = types_at(http, "/m1")
    assert types[ran] == "failure"
    assert [t for m, t in types.items() if "test notice" in m] == ["info"]

    hand_started_lab(member, shared_tmp, lambda: at(http, "/m1"))

    member.run("notify", "set", f"ntfy://127.0.0.1:{http.port}/m1topic", check=True)
    member.run("notify", "test", check=True)
    assert any("test notice" in m for m in at(http, "/m1topic"))
    to = "m1@lab.example"
    member.run(
        "notify",
        "set",
        f"mailto://127.0.0.1:{smtp.port}?from=labshare@lab.example&to={to}",
        check=True,
    )
    member.run("notify", "test", check=True)
    (mail,) = mail_to(smtp, to)
    assert "test notice" in mail and f"labshare connect {user}@{HOST}" in mail

    # The receiver is down for the first part of a burst, then up: every notice comes, once.
    down = Endpoint("http", free_port(), shared_tmp / "burst.jsonl")
    member.run("notify", "set", f"json://127.0.0.1:{down.port}/burst", check=True)
    paths = Paths.from_env(member.env)
    for n in range(20):
        assert events.emit(paths, events.Event("run", "finished", f"`job {n}`", 60.0))
    wait_for(lambda: member.json("notify", "status")["channels"][0]["failures"], 30)
    shown = member.run("notify", "status").stdout
    assert "last failure" in shown and "next try" in shown, shown
    channel = check(member, "notices-channel")
    assert (
        channel["status"] == "fail"
        and f"127.0.0.1:{down.port} does not answer" in channel["detail"]
    )
    down.start()
    try:
        wait_for(lambda: len(down.messages()) >= 20, 90, "the burst after the receiver came back")
        status = wait_for(
            lambda: (
                (s := member.json("notify", "status"))["pending"] == 0 and not s["sending"] and s
            ),
            30,
        )
        jobs = Counter(m.split("`")[1] for m in down.messages())
        assert jobs == Counter({f"job {n}": 1 for n in range(20)})
        # a test each for json, ntfy and mail, the run, the hand-started Lab's cell, the burst:
        # all on "own", whatever its URL
        assert status["channels"][0]["sent"] == 25 and status["channels"][0]["failures"] >= 1
    finally:
        down.stop()

    member.run("notify", "off", check=True)
    assert events.emit(paths, events.Event("run", "finished", "`quiet`", 60.0)) is None
    member.run("notify", "on", check=True)

    # The lab's spool with the wrong mode: one line in doctor, and the test says the same.
    spool = shared_tmp / "spool"
    spool.mkdir(mode=0o755)
    site.write_text(
        site.read_text()
        + f'[notify]\nchannels_file = "/nonexistent/c.toml"\nspool_dir = "{spool}"\n'
    )
    found = check(member, "notices-spool")
    assert found["status"] == "fail" and found["detail"].startswith(
        f"the notices spool {spool} has mode 755"
    ), found
    tested = member.run("notify", "test")
    assert tested.returncode == 1 and "lab: NOT delivered: the notices spool" in tested.stdout


@pytest.fixture
def lab_service(shared_tmp: Path, http: Endpoint, smtp: Endpoint) -> Iterator[dict]:
    """Root's notices service with two lab channels (a webhook with a secret in its URL, and mail)."""
    secret = f"s3cr3t-{uuid.uuid4().hex[:12]}"
    spool = shared_tmp / "spool"
    spool.mkdir()
    spool.chmod(0o1733)
    channels = shared_tmp / "channels.toml"
    channels.write_text(
        f'urls = ["json://127.0.0.1:{http.port}/{secret}/{{user}}", '
        f'"mailto://127.0.0.1:{smtp.port}?from=labshare@lab.example&to={{address}}"]\n'
    )
    channels.chmod(0o600)
    site = site_file(
        shared_tmp,
        f'[notify]\nchannels_file = "{channels}"\nspool_dir = "{spool}"\naddress = "{{user}}@lab.example"\n',
    )
    state = shared_tmp / "service"
    env = {**os.environ, "LABSHARE_SITE_CONFIG": str(site)}
    service = subprocess.Popen(
        [LABSHARE, "admin", "notices", "serve", "--state-dir", str(state)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert service.stdout is not None
        assert "serving" in service.stdout.readline()
        yield {"site": site, "secret": secret, "spool": spool, "state": state, "env": env}
    finally:
        service.terminate()
        service.wait(30)


def test_two_members_on_the_lab_channels_each_gets_their_own_and_none_can_forge_or_read_the_secret(
    make_user: Accounts, lab_service: dict, http: Endpoint, smtp: Endpoint, shared_tmp: Path
) -> None:
    alice, bob = make_user(), make_user()
    for m in (alice, bob):
        m.extra_env["LABSHARE_SITE_CONFIG"] = str(lab_service["site"])
        assert (
            "lab: handed to the lab's notices service" in m.run("notify", "test", check=True).stdout
        )
    secret = lab_service["secret"]
    for m, other in ((alice, bob), (bob, alice)):
        (hook,) = wait_for(lambda m=m: at(http, f"/{secret}/{m.name}"), 30)
        assert hook.startswith(
            f"{m.name}@{HOST}: labshare notify test reached you: this is a test notice"
        )
        (mail,) = wait_for(lambda m=m: mail_to(smtp, f"{m.name}@lab.example"), 30)
        assert mail.startswith(f"{m.name}@{HOST}:") and other.name not in mail

    # alice leaves a notice in the spool that says it is bob's: it is refused, never sent to bob.
    forge = (
        "import sys; from pathlib import Path; from labshare.notify import spool; "
        "from labshare.records.notice import Notice; "
        f"print(spool.drop(Path({str(lab_service['spool'])!r}), Notice(id='0000000000001-f0', "
        f"kind='run', user={bob.name!r}, host='x', what='FORGED')))"
    )
    assert alice.run_cmd([sys.executable, "-c", forge], check=True).stdout.strip() == "None"
    tally = lab_service["state"] / "tally.json"
    wait_for(
        lambda: json.loads(tally.read_text()).get("refused") == 1, 30, "the forged notice refused"
    )
    assert not any("FORGED" in m for m in [*http.messages(), *smtp.messages()])

    # The lab's secret is in no file alice can read; the channels file and the spool are closed to her.
    assert alice.run_cmd(["cat", str(shared_tmp / "channels.toml")]).returncode != 0
    assert alice.run_cmd(["ls", str(lab_service["spool"])]).returncode != 0
    readable = alice.run_cmd(
        ["grep", "-rl", secret, str(shared_tmp), str(alice.home), str(bob.home)]
    )
    assert readable.stdout == "", readable.stdout
    assert "only root can read" in alice.run("admin", "check").stdout
    shown = subprocess.run(
        [LABSHARE, "admin", "check"], env=lab_service["env"], capture_output=True, text=True
    ).stdout
    doctor = subprocess.run(
        [LABSHARE, "doctor", "--json"], env=lab_service["env"], capture_output=True, text=True
    )
    found = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert found["notices-lab-channels"]["status"] == "ok", found["notices-lab-channels"]
    assert found["notices-spool"]["status"] == "ok", found["notices-spool"]
    again = subprocess.run(
        [LABSHARE, "admin", "notices", "install", "--no-unit", "--json"],
        env=lab_service["env"],
        capture_output=True,
        text=True,
    )
    assert json.loads(again.stdout)["made"] == [], again  # run again, it changes nothing right
    assert stat.S_IMODE(lab_service["spool"].stat().st_mode) == 0o1733
    assert secret in (shared_tmp / "channels.toml").read_text()  # never overwritten
    assert "addressed: each member as {user}@lab.example" in shown, shown
    assert shown.count("  channel: ") == 2 and "channel: mailto://127.0.0.1" in shown


def execute(server: lo.Server, kernel: str, code: str) -> str:
    """Run `code` on the server side, as Lab does with output keeping (no browser): its request's URL."""
    return server.api.ok("POST", f"/api/kernels/{kernel}/execute", {"code": code})["request_url"]


def session(server: lo.Server, member: Member, name: str) -> str:
    """A notebook's kernel, started through the sessions API; returned once notices watch it."""
    lo.write_notebook(server.root, name, [])
    kernel = server.api.ok(
        "POST",
        "/api/sessions",
        {"path": name, "name": name, "type": "notebook", "kernel": {"name": "python3"}},
    )["kernel"]["id"]
    log = member.state_dir / "server.log"
    wait_for(lambda: f"watching the cells of kernel {kernel}" in log.read_text(), 120)
    return kernel


def capped_cgroup(pid: int, limit: int) -> Path | None:
    """A cgroup v1 memory child of `pid`'s own, capped at `limit` bytes, with `pid` moved in; None where
    this host does not let root make one (then the out-of-memory part cannot be made real here)."""
    from labshare.jupyterside.cell_notices import memory_cgroup

    parent = memory_cgroup(pid)
    if parent is None or not (parent / "memory.limit_in_bytes").exists():
        return None
    child = parent / f"labshare-test-{uuid.uuid4().hex[:8]}"
    try:
        child.mkdir()
        (child / "memory.limit_in_bytes").write_text(str(limit))
        if (child / "memory.memsw.limit_in_bytes").exists():
            (child / "memory.memsw.limit_in_bytes").write_text(str(limit))
        (child / "cgroup.procs").write_text(str(pid))
    except OSError:
        return None
    assert child.name in Path(f"/proc/{pid}/cgroup").read_text(), "the kernel did not move"
    return child


@pytest.mark.slow
def test_a_lab_with_no_browser_tells_of_long_cells_run_all_errors_dead_kernels_reclaim_and_crashes(
    member: Member, http: Endpoint, fake_nvml: FakeNvml, leases_dir: Path, shared_tmp: Path
) -> None:
    site = leased_site(
        shared_tmp, leases_dir, 'idle_reclaim_after = "20s"\nreclaim_warning = "10s"\n'
    )
    member.extra_env.update({"LABSHARE_SITE_CONFIG": str(site), **fake_nvml.env})
    member.run(
        "notify", "set", f"json://127.0.0.1:{http.port}/lab1", "--min-duration", "0.5s", check=True
    )
    server = lo.start_server(member)
    said = lambda text: [m for m in at(http, "/lab1") if text in m]  # noqa: E731
    head = f"{member.name}@{HOST}: "

    # A kernel left idle on its card: warned, then reclaimed, while the cells below run.
    idle = session(server, member, "gpu.ipynb")
    (lease,) = [held for held in leases.leases(leases_dir) if held.kernel_id == idle]
    index = [c.uuid for c in fake_nvml.cards].index(lease.card)
    fake_nvml.procs = [GpuProc(gpu=index, pid=kernel_pid(member, idle), used_mib=30000, sm=0)]
    fake_nvml.write()

    kernel = session(server, member, "train.ipynb")
    execute(server, kernel, "import time; time.sleep(1)")
    (done,) = wait_for(lambda: said("train.ipynb cell finished"), 60)
    assert done.startswith(f"{head}train.ipynb cell finished after ") and took(done) >= 1
    assert done.endswith(f" s · labshare connect {member.name}@{HOST}")
    execute(server, kernel, "time.sleep(0.6); 1/0")
    (failed,) = wait_for(lambda: said("cell failed"), 60)
    assert failed.startswith(
        f"{head}train.ipynb cell failed: ZeroDivisionError: division by zero after "
    )
    for _ in range(10):  # Run all: ten cells queued at once, each longer than min_duration
        execute(server, kernel, "time.sleep(0.6)")
    (burst,) = wait_for(lambda: said("10 cells finished"), 120)
    assert burst.startswith(f"{head}train.ipynb 10 cells finished after ") and took(burst) >= 6
    assert len(said("train.ipynb cell finished")) == 1  # none of the ten on its own

    # A client that starts its own kernel from the spec (nbclient's `jupyter execute`, as papermill does):
    lo.write_notebook(server.root, "batch.ipynb", ["import time; time.sleep(1)"])
    member.run_cmd(  # its kernelspec from the member's folder, not the venv's own python3
        [str(Path(LABSHARE).parent / "jupyter-execute"), "batch.ipynb"],
        cwd=str(server.root),
        env={"JUPYTER_PREFER_ENV_PATH": "0"},
        check=True,
    )
    (batch,) = wait_for(lambda: said("batch.ipynb"), 60)
    assert batch.startswith(f"{head}batch.ipynb cell finished after ") and took(batch) >= 1

    killed = kernel_pid(member, kernel)
    os.kill(killed, signal.SIGKILL)
    (died,) = wait_for(lambda: said("kernel died"), 60)
    assert died.startswith(
        f"{head}train.ipynb kernel died: killed by SIGKILL; Jupyter restarted it"
    )

    (warned,) = wait_for(lambda: said("GPU reclaim warning"), 120)
    assert warned.startswith(
        f"{head}gpu.ipynb GPU reclaim warning: its kernel will be shut down at "
    )
    assert "run a cell to keep it" in warned
    (reclaimed,) = wait_for(lambda: said("GPU reclaimed"), 120)
    assert reclaimed.startswith(f"{head}gpu.ipynb GPU reclaimed: notebook saved, kernel shut down")
    assert "29.3 GiB of GPU memory freed" in reclaimed

    # Past a memory cap: the kernel's cgroup (a cap like the server's systemd scope) counts the OOM kill.
    def new_kernel() -> int | None:  # the restarted process, never the killed one's zombie
        pid = kernel_pid(member, kernel)
        return pid if pid != killed and psutil.pid_exists(pid) else None

    log = member.state_dir / "server.log"
    watching = f"watching the cells of kernel {kernel}"
    wait_for(lambda: log.read_text().count(watching) == 2, 60, "notices to watch the new kernel")
    cgroup = capped_cgroup(wait_for(new_kernel, 60), 256 << 20)
    if cgroup is not None:
        try:
            # A cell in the cap first: from its end on, the notices count OOM kills where it is counted.
            execute(server, kernel, "import time; time.sleep(0.6)")
            wait_for(lambda: len(said("train.ipynb cell finished")) == 2, 60, "a cell in the cap")
            execute(server, kernel, "x = b'x' * (1 << 30)")
            (oom,) = wait_for(lambda: said("out of memory"), 120)
            assert oom.startswith(
                f"{head}train.ipynb kernel died: out of memory, the OOM killer ended it (memory cap 256 MiB)"
            )
        finally:
            wait_for(lambda: not (cgroup / "cgroup.procs").read_text().strip(), 60)
            cgroup.rmdir()

    os.kill(member.state().pid, signal.SIGKILL)  # the Jupyter server itself
    (crash,) = wait_for(lambda: said("crashed"), 120)
    assert crash.startswith(
        f"{head}your JupyterLab crashed (exit code -9) and came back: restart 1"
    )
    wait_for(lambda: server.api.call("GET", "/api/status").status == 200, 120, ignoring=(OSError,))
    if cgroup is None:
        pytest.skip("ran all but the out-of-memory part: root cannot make a memory cgroup here")
