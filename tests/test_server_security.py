"""Another account on the same host must not get in, by any door."""

from __future__ import annotations

import socket
import subprocess

from conftest import Member

from labshare import probe

PROBE = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("refused", e.errno)
else:
    print("connected")
"""


def test_other_user_cannot_reach_socket_or_read_secrets(member: Member, make_user) -> None:
    status = member.json("start")["status"]
    intruder = make_user()
    attempt = intruder.run_cmd

    connect = attempt(["python3", "-c", PROBE, status["socket"]])
    assert connect.stdout.startswith("refused"), connect.stdout + connect.stderr

    secrets = [
        member.state_dir / "token",
        member.state_dir / "server.json",
        member.state_dir / "server.log",
        member.state_dir / "launch.json",
        member.state_dir / "runtime",
    ]
    secrets += list((member.state_dir / "runtime").glob("*"))
    for path in secrets:
        read = attempt(["cat", str(path)])
        assert read.returncode != 0 and "Permission denied" in read.stderr, (path, read.stdout)
    listing = attempt(["ls", str(member.state_dir)])
    assert listing.returncode != 0


def test_other_user_gets_403_in_tcp_mode(member: Member, make_user) -> None:
    status = member.json("start", "--tcp")["status"]
    intruder = make_user()
    script = (
        "import http.client, sys\n"
        "for path in ('/api/status', '/api/contents', '/api/kernels', '/lab'):\n"
        "    c = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]))\n"
        "    c.request('GET', path); print(path, c.getresponse().status)\n"
        "c = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]))\n"
        "c.request('POST', '/api/kernels', body='{}', headers={'Content-Type': 'application/json'})\n"
        "print('POST', c.getresponse().status)\n"
    )
    done = intruder.run_cmd(["python3", "-c", script, str(status["port"])])
    codes = dict(line.split() for line in done.stdout.splitlines())
    assert codes["/api/status"] == "403" and codes["/api/contents"] == "403"
    assert codes["/api/kernels"] == "403" and codes["POST"] == "403"
    assert codes["/lab"] in ("302", "403"), codes  # a redirect to the login page, never the app


def test_tcp_port_held_by_another_user_names_them(member: Member, make_user) -> None:
    squatter = make_user()
    with socket.socket() as probe_sock:
        probe_sock.bind(("127.0.0.1", 0))
        port = probe_sock.getsockname()[1]
    holder = squatter.popen(
        [
            "python3",
            "-c",
            (
                "import socket, time\n"
                f"s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                f"s.bind(('127.0.0.1', {port})); s.listen(); print('ready', flush=True); time.sleep(120)\n"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        done = member.run("start", "--port", str(port))
        assert done.returncode != 0
        assert f"user {squatter.user}" in done.stderr and str(port) in done.stderr
        assert "Traceback" not in done.stderr
        assert member.run("status").returncode == 3
    finally:
        holder.kill()
        holder.wait()


def test_probe_without_token_is_refused(member: Member) -> None:
    status = member.json("start")["status"]
    assert probe.request(probe.Address(socket=status["socket"]), "/api/kernels").status == 403
