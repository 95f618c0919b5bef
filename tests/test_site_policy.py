"""Site policy: validation, GPUs and culling reaching Jupyter, and port claims under contention."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import Member, free_port, site_file, wait_for
from jupyter_api import Lab

from labshare import probe


def claims_dir(where: Path) -> Path:
    path = where / "ports"
    path.mkdir()
    os.chmod(where, 0o755)
    os.chmod(path, 0o1777)
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[server\nmode = 1", "is not valid TOML"),
        ("[server]\nmood = 'tcp'", "[server] has no key `mood`; did you mean `mode`?"),
        (
            "[ports]\nrange = '10999-10000'",
            'ports.range: must be a range "LOW-HIGH" within 1024-65535',
        ),
        ("[ports]\nrange = 'lots'", "ports.range: must be a range"),
        (
            "[ports]\nalice = 10001\nbob = 10001",
            "ports.bob: port 10001 is already assigned to alice",
        ),
        ("[users.alice]\ngpus = 'all'", "users.alice.gpus: must be a list"),
        ("[users.alice]\nmemory_max = 'lots'", "users.alice.memory_max: must be a size"),
        (
            "[server]\ncull_idle_kernels_after = 'soon'",
            "server.cull_idle_kernels_after: must be a duration",
        ),
        ("[server]\nmode = 'http'", "server.mode: must be"),
        ("[admin]\nusers = 'alice'", "admin.users: must be a list"),
    ],
)
def test_invalid_site_config_gives_its_own_line(
    member: Member, tmp_path: Path, text: str, expected: str
) -> None:
    path = site_file(tmp_path, text)
    done = member.run("start", env={"LABSHARE_SITE_CONFIG": str(path)})
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    line = done.stderr.strip().splitlines()[0]
    assert line.startswith(f"labshare: error: {path}: ") and expected in line, line
    assert member.run("status").returncode == 3


def test_member_may_only_override_what_the_admin_allows(member: Member, tmp_path: Path) -> None:
    path = site_file(tmp_path, "[member]\nmay_override = ['root_dir']\n")
    own = member.home / ".config/labshare/config.toml"
    own.parent.mkdir(parents=True)
    own.write_text("[server]\ncull_idle_kernels_after = '1h'\n")
    done = member.run("start", env={"LABSHARE_SITE_CONFIG": str(path)})
    assert done.returncode != 0
    assert (
        "server.cull_idle_kernels_after: the admin does not let members change this" in done.stderr
    )
    own.write_text(f"[server]\nroot_dir = '{member.home / 'work'}'\n")
    (member.home / "work").mkdir()
    done = member.run("start", "--json", env={"LABSHARE_SITE_CONFIG": str(path)})
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)["status"]
    assert status["root_dir"] == str(member.home / "work")


def test_gpus_reach_the_kernels_and_culling_reaches_jupyter(member: Member, tmp_path: Path) -> None:
    path = site_file(
        tmp_path,
        (
            "[server]\ncull_idle_kernels_after = 4\n"
            f"[users.{member.name}]\ngpus = [1, 3]\nmemory_max = '4G'\n"
        ),
    )
    member.extra_env["LABSHARE_SITE_CONFIG"] = str(path)
    status = member.json("start")["status"]
    assert status["limits"]["gpus"] == [1, 3]
    assert any("not enforced here" in n for n in status["notes"])
    info = member.json("info")
    lab = Lab(probe.Address(socket=info["socket"]), info["token"])
    # A busy kernel is never culled; an idle one goes after the timeout.  The busy one's last message comes
    # first, so each sweep that finds the idle one idle long enough finds the busy one so for longer; it
    # runs until the idle one is gone, not for a fixed time.
    busy = lab.start_kernel()
    flag = tmp_path / "let-go"
    done: list[str] = []
    worker = threading.Thread(
        target=lambda: done.append(
            lab.execute(
                busy,
                f"import os, time\nwhile not os.path.exists({str(flag)!r}):\n    time.sleep(0.1)\n"
                "print('ok')",
                timeout=150,
            )
        )
    )
    worker.start()
    try:
        wait_for(
            lambda: lab.ok("GET", f"/api/kernels/{busy}")["execution_state"] == "busy",
            what="the busy kernel",
            every=0.05,
        )
        kernel = lab.start_kernel()
        assert (
            lab.execute(kernel, "import os; print(os.environ['CUDA_VISIBLE_DEVICES'])").strip()
            == "1,3"
        )
        wait_for(
            lambda: kernel not in {k["id"] for k in lab.ok("GET", "/api/kernels")},
            90,
            "the idle kernel culled",
        )
        assert lab.ok("GET", f"/api/kernels/{busy}")["execution_state"] == "busy"
    finally:
        flag.touch()
        worker.join()
    assert done == ["ok\n"]
    assert "Culling kernel" in member.run("logs", "-n", "500").stdout


CLAIM = """
import json, os, sys
from pathlib import Path
from labshare import config
from labshare.server import ports
site = config.load_site(Path(sys.argv[1]))
print(ports.port_for(site, sys.argv[2], os.getuid()))
"""


def test_concurrent_port_claims_are_unique_and_owned(make_user, shared_tmp: Path) -> None:
    claims = claims_dir(shared_tmp)
    path = site_file(
        shared_tmp, f"[ports]\nrange = '20000-20100'\nclaims_dir = '{claims}'\nfixed = 20001\n"
    )
    users = [make_user() for _ in range(10)]

    def claim(m: Member) -> int:
        done = m.run_cmd([sys.executable, "-c", CLAIM, str(path), m.user])
        assert done.returncode == 0, done.stderr
        return int(done.stdout)

    with ThreadPoolExecutor(30) as pool:
        got = list(pool.map(claim, [u for u in users for _ in range(3)]))
    by_user: dict[str, set[int]] = {}
    for m, port in zip([u for u in users for _ in range(3)], got, strict=True):
        by_user.setdefault(m.user, set()).add(port)
    firsts = [min(p) for p in by_user.values()]
    assert len(set(firsts)) == len(users), by_user  # no two users share a port
    assert 20001 not in got  # an assigned port is never claimed
    recorded = {int(p.name): p.stat().st_uid for p in claims.iterdir()}
    for m in users:
        assert any(recorded[p] == m.uid for p in by_user[m.user])
        assert claim(m) == min(p for p in recorded if recorded[p] == m.uid)  # stays theirs

    victim, thief = users[0], users[1]
    victim_port = claim(victim)
    attack = (
        "import os, sys\n"
        "p = sys.argv[1]\n"
        "for act in (lambda: os.unlink(p), lambda: os.open(p, os.O_WRONLY | os.O_TRUNC),"
        " lambda: os.rename(p, p + 'x'), lambda: os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY)):\n"
        "    try:\n        act(); print('done')\n    except OSError as e:\n        print('refused', e.errno)\n"
    )
    done = thief.run_cmd([sys.executable, "-c", attack, str(claims / str(victim_port))])
    assert done.stdout.split("\n").count("done") == 0, done.stdout
    assert (claims / str(victim_port)).stat().st_uid == victim.uid


def test_assigned_port_squatted_by_another_user_names_them(make_user, shared_tmp: Path) -> None:
    owner, squatter = make_user(), make_user()
    port = free_port()
    path = site_file(shared_tmp, f"[server]\nmode = 'tcp'\n[ports]\n{owner.user} = {port}\n")
    holder = squatter.popen(
        [
            sys.executable,
            "-c",
            (
                "import socket, time\ns = socket.socket()\n"
                f"s.bind(('127.0.0.1', {port})); s.listen(); print('ready', flush=True); time.sleep(120)\n"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        done = owner.run("start", env={"LABSHARE_SITE_CONFIG": str(path)})
        assert done.returncode != 0
        assert f"Port {port}" in done.stderr and f"user {squatter.user}" in done.stderr
    finally:
        holder.kill()
        holder.wait()
    done = owner.run("start", "--json", env={"LABSHARE_SITE_CONFIG": str(path)})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"]["port"] == port
    theft = squatter.run("start", "--port", str(port), env={"LABSHARE_SITE_CONFIG": str(path)})
    assert theft.returncode != 0 and f"belongs to {owner.user}" in theft.stderr


def test_admin_check_and_ports_show_the_policy_and_who_listens(
    member: Member, shared_tmp: Path
) -> None:
    claims = claims_dir(shared_tmp)
    path = site_file(
        shared_tmp,
        (
            f"[server]\nmode = 'tcp'\n[ports]\nrange = '21000-21010'\nclaims_dir = '{claims}'\n"
            f"[users.{member.name}]\ngpus = [0]\nmemory_max = '2G'\n[users.nosuchuser]\n"
            f"[admin]\nusers = ['{member.name}']\n"
        ),
    )
    member.extra_env["LABSHARE_SITE_CONFIG"] = str(path)
    status = member.json("start")["status"]
    assert 21000 <= status["port"] <= 21010

    check = member.run("admin", "check", "--json")
    assert check.returncode == 1  # nosuchuser has no account
    result = json.loads(check.stdout)
    mine = next(m for m in result["members"] if m["user"] == member.name)
    assert (
        mine["admin"]
        and mine["gpus"] == [0]
        and mine["memory_max"] == "2G"
        and mine["mode"] == "tcp"
    )
    assert any("nosuchuser" in p and "no Unix account" in p for p in result["problems"])

    rows = json.loads(member.run("admin", "ports", "--json").stdout)
    row = next(r for r in rows if r["port"] == status["port"])
    assert row["owner"] == member.name and row["source"] == "claimed"
    assert row["listening_user"] == member.name and row["conflict"] is False
    text = member.run("admin", "ports").stdout
    assert str(status["port"]) in text and member.name in text
