"""`scripts/install` on a server as a newcomer finds it: nothing but the system's python3.

Each test copies the checkout somewhere a fresh Unix user can read and runs the
script as that user with a login's bare PATH, so no uv, pipx or test venv can
help it.  The network is real (PyPI), as on a fresh server.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

import pytest
from conftest import Member, need_root

REPO = Path(__file__).resolve().parent.parent
SYSTEM_PYTHON = Path("/usr/bin/python3")
BARE_PATH = "/usr/bin:/bin"
# A fresh install downloads labshare's dependencies (about a hundred packages) from the index.
INSTALL_TIMEOUT = 600
pytestmark = pytest.mark.timeout(1800)


def quickstart() -> str:
    """The README Quickstart's first command, read from the README so the test follows what it says."""
    body = (REPO / "README.md").read_text().split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", body, re.DOTALL)
    assert block, "README.md's Quickstart has no bash block"
    return block.group(1).strip().splitlines()[0]


def checkout(into: Path) -> Path:
    """What `git clone` gives a newcomer: the files the install needs, readable by every account."""
    src = into / "labshare"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__"))
    (src / "scripts").mkdir()
    shutil.copy2(REPO / "scripts" / "install", src / "scripts" / "install")
    subprocess.run(["chmod", "-R", "a+rX", str(into)], check=True)
    return src


def fresh_login(m: Member, path: str = BARE_PATH, **extra: str) -> dict[str, str]:
    """A login's environment and nothing else of the test's.

    This machine reaches PyPI through a proxy whose CA only the system store
    holds, so SSL_CERT_FILE is passed on, as conftest does for its members.
    """
    env = {"HOME": str(m.home), "USER": m.name, "LOGNAME": m.name, "LANG": "C.UTF-8", "PATH": path}
    for key in ("SSL_CERT_FILE", "UV_INDEX_URL", "UV_DEFAULT_INDEX", "PIP_INDEX_URL"):
        if key in os.environ:
            env[key] = os.environ[key]
    env.update(extra)
    return env


def as_member(m: Member, argv: list[str], env: dict[str, str], timeout: float = INSTALL_TIMEOUT):
    return m.run_cmd(argv, env=env, timeout=timeout)


def python_farm(into: Path, *, drop: Iterable[str] = (), marker: bool = False) -> Path:
    """A real copy of the system Python with its own prefix: its stdlib linked entry by entry, less `drop`.

    Lets a test give the script a Python like Debian's without python3-venv
    (`drop=["ensurepip"]`) or one marked EXTERNALLY-MANAGED, without changing
    the machine's own.
    """
    real = SYSTEM_PYTHON.resolve()
    version = real.name.removeprefix("python")
    stdlib = Path(f"/usr/lib/python{version}")
    (into / "bin").mkdir(parents=True)
    lib = into / "lib" / f"python{version}"
    lib.mkdir(parents=True)
    shutil.copy2(real, into / "bin" / "python3")
    skipped = {*drop, "EXTERNALLY-MANAGED"}
    for entry in stdlib.iterdir():
        if entry.name not in skipped:
            (lib / entry.name).symlink_to(entry)
    if marker:
        (lib / "EXTERNALLY-MANAGED").write_text("[externally-managed]\nError=Use a venv.\n")
    subprocess.run(["chmod", "-R", "a+rX", str(into)], check=True)
    return into / "bin"


def externally_managed_python(tmp: Path) -> tuple[str, str]:
    """The system Python where it carries PEP 668's marker (Debian 12, Ubuntu 23.04+), else a marked copy.

    Returns the PATH to run the script with and that Python's stdlib folder.
    """
    done = subprocess.run([str(SYSTEM_PYTHON), "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
                          capture_output=True, text=True, check=True)
    stdlib = done.stdout.strip()
    if (Path(stdlib) / "EXTERNALLY-MANAGED").is_file():
        return BARE_PATH, stdlib
    bindir = python_farm(tmp / "marked-python", marker=True)
    return f"{bindir}:{BARE_PATH}", str(bindir.parent / "lib" / Path(stdlib).name)


def site_listing(python: str) -> dict[str, list[str]]:
    """Every site folder the system Python installs into, with what is in it."""
    code = ("import json, site, sysconfig; print(json.dumps(sorted({sysconfig.get_path('purelib'), "
            "sysconfig.get_path('platlib'), *site.getsitepackages()})))")
    folders = json.loads(subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout)
    return {f: sorted(os.listdir(f)) if os.path.isdir(f) else [] for f in folders}


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def export_line(stdout: str) -> str:
    lines = [line.strip() for line in stdout.splitlines() if line.strip().startswith("export PATH=")]
    assert len(lines) == 1, stdout
    return lines[0]


def test_a_fresh_member_installs_starts_and_upgrades_with_only_the_system_python(
    make_user, shared_tmp: Path
) -> None:
    m = make_user()
    src = checkout(shared_tmp)
    path, stdlib = externally_managed_python(shared_tmp)
    python = shutil.which("python3", path=path)
    assert python and (Path(stdlib) / "EXTERNALLY-MANAGED").is_file()
    assert not shutil.which("uv", path=path) and not shutil.which("pipx", path=path)
    before = site_listing(python)
    env = fresh_login(m, path)

    # The README's Quickstart, exactly as written there, from the checkout.
    done = m.run_cmd(["sh", "-c", quickstart()], env=env, timeout=INSTALL_TIMEOUT, cwd=str(src))
    assert done.returncode == 0, done.stdout + done.stderr
    link = m.home / ".local/bin/labshare"
    assert link.is_symlink() and Path(os.readlink(link)) == m.home / ".local/share/labshare/venv/bin/labshare"
    line = export_line(done.stdout)  # ~/.local/bin is not on a bare PATH: the one line to add says so
    assert site_listing(python) == before, "the script installed into the system Python"
    assert not list(m.home.glob(".local/lib/python3*")), "the script used pip --user"

    # The member follows the printed line; the server the Quickstart started is running.
    started = as_member(m, ["sh", "-c", f"{line}\nlabshare status --json"], env, timeout=300)
    assert started.returncode == 0, started.stdout + started.stderr
    status = json.loads(started.stdout)
    assert status["running"] is True

    again = as_member(m, ["sh", str(src / "scripts" / "install")], env)
    assert again.returncode == 0 and "already installed" in again.stdout, again.stdout + again.stderr

    upgraded = as_member(m, ["sh", str(src / "scripts" / "install"), "--upgrade"], env)
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    after = as_member(m, ["sh", "-c", f"{line}\nlabshare status --json"], env, timeout=120)
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout)["pid"] == status["pid"], "the upgrade stopped the running server"
    assert site_listing(python) == before
    as_member(m, ["sh", "-c", f"{line}\nlabshare stop"], env, timeout=120)


def test_system_install_serves_another_member_on_their_default_path(make_user, shared_tmp: Path) -> None:
    """As root: /opt/labshare and /usr/local/bin/labshare, in a mount namespace of the test's own.

    The namespace gives the script the machine's real /opt and /usr/local/bin
    paths without letting other tests running meanwhile see its labshare.
    """
    need_root("installs into /opt and /usr/local/bin")
    m = make_user()
    subprocess.run(["usermod", "-d", str(m.home), m.user], check=True)  # a login lands in the test's home
    src = checkout(shared_tmp)
    opt, local_bin = shared_tmp / "opt", shared_tmp / "usr-local-bin"
    opt.mkdir()
    local_bin.mkdir()
    root_env = {"HOME": "/root", "LANG": "C.UTF-8", "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    root_env.update({k: os.environ[k] for k in ("SSL_CERT_FILE", "UV_INDEX_URL", "PIP_INDEX_URL") if k in os.environ})
    member_cmd = "command -v labshare && labshare start && labshare status --json && labshare stop"
    script = "\n".join([
        "set -e",
        f"mount --bind {shlex.quote(str(opt))} /opt",
        f"mount --bind {shlex.quote(str(local_bin))} /usr/local/bin",
        "umask 077",  # root's own umask must not make the install unreadable to members
        f"sh {shlex.quote(str(src / 'scripts' / 'install'))} --system",
        "echo '== again'",
        f"sh {shlex.quote(str(src / 'scripts' / 'install'))} --system",
        "echo '== member'",
        f"runuser -l {m.user} -c {shlex.quote(member_cmd)}",
    ])
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], env=root_env,
                          capture_output=True, text=True, timeout=INSTALL_TIMEOUT + 300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    first, rest = done.stdout.split("== again\n")
    again, member_out = rest.split("== member\n")
    assert "/usr/local/bin/labshare" in first and "already installed" in again
    assert member_out.splitlines()[0] == "/usr/local/bin/labshare"
    status = json.loads(member_out[member_out.index("{\n"):member_out.rindex("}") + 1])
    assert status["running"] is True
    assert os.readlink(local_bin / "labshare") == "/opt/labshare/bin/labshare"
    for path in (opt / "labshare").rglob("*"):
        if not path.is_symlink():
            wanted = 0o005 if path.is_dir() else 0o004
            assert path.stat().st_mode & wanted == wanted, f"{path} is not readable by every member"


def test_a_python_without_ensurepip_gets_one_line_and_nothing_is_left(make_user, shared_tmp: Path) -> None:
    m = make_user()
    src = checkout(shared_tmp)
    bindir = python_farm(shared_tmp / "python-without-venv", drop=["ensurepip"])
    before = files_under(m.home)
    done = as_member(m, ["sh", str(src / "scripts" / "install")], fresh_login(m, f"{bindir}:{BARE_PATH}"))
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1 and "sudo apt install python3-venv" in done.stderr, done.stderr
    assert files_under(m.home) == before


def test_a_failed_first_install_leaves_nothing_behind(make_user, shared_tmp: Path) -> None:
    m = make_user()
    src = checkout(shared_tmp)
    before = files_under(m.home)
    nowhere = "http://127.0.0.1:9/simple"  # refused at once: the install fails after the venv is made
    env = fresh_login(m, PIP_INDEX_URL=nowhere, PIP_RETRIES="0", PIP_NO_CACHE_DIR="1")
    done = as_member(m, ["sh", str(src / "scripts" / "install")], env)
    assert done.returncode != 0 and "Creating" in done.stdout, done.stdout + done.stderr
    assert "could not install uv" in done.stderr
    assert files_under(m.home) == before


def fake_tool(bindir: Path, name: str, log: Path, answers: str = "") -> None:
    """A stand-in `uv` or `pipx` that records its arguments and prints `answers` for queries."""
    bindir.mkdir(exist_ok=True)
    tool = bindir / name
    tool.write_text(f'#!/bin/sh\necho "{name} $*" >> {shlex.quote(str(log))}\n{answers}\n')
    tool.chmod(0o755)


@pytest.mark.parametrize(("tool", "args", "expected"), [
    ("uv", [], "uv tool install --quiet {src}"),
    ("uv", ["--upgrade", "--extra", "gpu"], "uv tool install --quiet --upgrade --reinstall-package labshare {src}[gpu]"),
    ("pipx", ["--extra", "gpu", "--extra", "hub"], "pipx install {src}[gpu,hub]"),
    ("pipx", ["--upgrade"], "pipx install --force {src}"),
])
def test_uv_or_pipx_is_used_where_found(member: Member, shared_tmp: Path, tool: str, args: list[str],
                                        expected: str) -> None:
    src = checkout(shared_tmp)
    log = shared_tmp / "calls"
    bindir = shared_tmp / "tools"
    answers = {"uv": f'[ "$1 $2" = "tool dir" ] && echo {member.home}/.local/bin; exit 0',
               "pipx": f'[ "$1" = environment ] && echo {member.home}/.local/bin; exit 0'}
    fake_tool(bindir, tool, log, answers[tool])
    env = fresh_login(member, f"{bindir}:{BARE_PATH}")
    done = as_member(member, ["sh", str(src / "scripts" / "install"), *args], env, timeout=60)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == expected.format(src=src)
    assert "export PATH=\"$HOME/.local/bin:$PATH\"" in done.stdout
    assert not (member.home / ".local/share/labshare").exists()


def test_system_needs_root_and_extras_must_be_names(make_user, shared_tmp: Path) -> None:
    m = make_user()
    src = checkout(shared_tmp)
    env = fresh_login(m)
    refused = as_member(m, ["sh", str(src / "scripts" / "install"), "--system"], env, timeout=60)
    assert refused.returncode != 0 and "needs root" in refused.stderr
    bad = as_member(m, ["sh", str(src / "scripts" / "install"), "--extra", "gpu;rm -rf ~"], env, timeout=60)
    assert bad.returncode != 0 and "--extra takes names" in bad.stderr
    assert not (m.home / ".local").exists()
