"""Bad input gives one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import socket
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import IS_ROOT, Member


def one_clear_line(done) -> str:
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    first = done.stderr.strip().splitlines()[0]
    assert first.startswith("labshare: error: ")
    return first


def test_corrupt_state_file_is_moved_aside(member: Member) -> None:
    member.state_dir.mkdir(parents=True)
    (member.state_dir / "server.json").write_text("{not json")
    line = one_clear_line(member.run("start"))
    assert "server.json was unreadable; kept as" in line and "run the command again" in line
    assert list(member.state_dir.glob("server.json.corrupt-*"))
    assert member.run("start").returncode == 0


def test_unwritable_state_dir(request: pytest.FixtureRequest) -> None:
    # Root writes through mode 0555, so as root (CI) a member of their own; as anyone else, themselves.
    other: Member = (
        request.getfixturevalue("make_user")() if IS_ROOT else request.getfixturevalue("member")
    )
    state_home = other.home / "state"
    state_home.mkdir()
    state_home.chmod(0o555)
    import os

    os.chown(state_home, other.uid, -1)
    line = one_clear_line(other.run("start", env={"XDG_STATE_HOME": str(state_home)}))
    assert "Cannot create" in line and str(state_home) in line


def test_port_in_use(member: Member) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        line = one_clear_line(member.run("start", "--tcp", "--port", str(port)))
    assert f"Port {port}" in line and "in use by you" in line


def test_dir_that_is_a_file(member: Member) -> None:
    target = member.home / "notes.txt"
    target.write_text("hello")
    line = one_clear_line(member.run("start", "--dir", str(target)))
    assert "is a file" in line
    assert target.read_text() == "hello"


def test_home_is_never_served(member: Member) -> None:
    line = one_clear_line(member.run("start", "--dir", str(member.home)))
    assert "home directory" in line


def test_jupyter_missing(member: Member, tmp_path: Path) -> None:
    # An environment with labshare's Python and libraries but no jupyter-lab anywhere on PATH.
    bare = tmp_path / "bare"
    (bare / "bin").mkdir(parents=True)
    (bare / "bin" / "python").symlink_to(sys.executable)
    (bare / "pyvenv.cfg").write_text(
        f"home = {Path(sys.executable).resolve().parent}\ninclude-system-site-packages = false\n"
    )
    site = bare / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    site.mkdir(parents=True)
    (site / "outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = member.run_cmd(
        [str(bare / "bin" / "python"), "-m", "labshare", "start"], env={"PATH": "/usr/bin:/bin"}
    )
    line = one_clear_line(done)
    assert "JupyterLab was not found" in line


def test_long_home_falls_back_to_private_tmp_socket(member: Member) -> None:
    deep = member.home / ("x" * 60) / ("y" * 40)
    deep.mkdir(parents=True)
    member.extra_env["XDG_STATE_HOME"] = str(deep)
    status = member.json("start")["status"]
    assert status["socket"].startswith("/tmp/labshare-")
    assert status["socket_fallback"] is True
    assert any("longer than Unix sockets allow" in n for n in member.json("status")["notes"])
    import stat

    assert stat.S_IMODE(Path(status["socket"]).parent.stat().st_mode) == 0o700


@pytest.mark.quick
def test_version_check_passes_what_is_installed_and_names_what_to_install() -> None:
    """Checked against the adapter's tested ranges and this environment's real versions."""
    from labshare.install_hint import package_command
    from labshare.server import versions

    bounds = versions.tested()
    assert set(bounds) == {
        "jupyter-server",
        "jupyter-client",
        "jupyter-server-ydoc",
        "jupyter-server-nbmodel",
    }
    real = versions.installed(bounds)
    assert None not in real.values() and versions.unsupported(bounds, real) == []
    lines = versions.unsupported(bounds, {**real, "jupyter-server-nbmodel": "0.3.0"})
    assert lines == [
        "jupyter-server-nbmodel 0.3.0 is installed, but labshare uses its internals and is tested with "
        "jupyter-server-nbmodel<0.3,>=0.2.9; install that in labshare's environment: "
        f"{package_command('jupyter-server-nbmodel<0.3,>=0.2.9')}."
    ]


def test_start_names_an_unsupported_version_in_one_line_and_still_starts(
    member: Member, tmp_path: Path
) -> None:
    """A newer nbmodel's metadata ahead of the real one on the path, as an installer ignoring the bound would put it."""
    shadow = tmp_path / "shadow" / "jupyter_server_nbmodel-0.3.0.dist-info"
    shadow.mkdir(parents=True)
    (shadow / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: jupyter-server-nbmodel\nVersion: 0.3.0\n"
    )
    member.extra_env["PYTHONPATH"] = str(shadow.parent)
    done = member.run("start")
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stdout.splitlines() if "0.3.0" in line]
    assert (
        len(said) == 1
        and "uv pip install" in said[0]
        and "'jupyter-server-nbmodel<0.3,>=0.2.9'" in said[0]
    ), done.stdout
    assert member.json("status")["running"]
