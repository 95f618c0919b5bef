"""`scripts/install` on a server as a newcomer finds it: nothing but the system's python3.

Each test copies the checkout somewhere a fresh Unix user can read and runs the
script as that user with a login's bare PATH, so no uv, pipx or test venv can
help it.  The full installs use the real network (PyPI), as on a fresh server;
the failures and the hash check use a package index served from a folder on
127.0.0.1, with a stand-in uv wheel, so they need no network.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import platform
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Member, free_port, need_root, processes_of, wait_for

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
    for name in ("install", "bootstrap_uv.py"):
        shutil.copy2(REPO / "scripts" / name, src / "scripts" / name)
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


def python_farm(into: Path, *, marker: bool = False) -> Path:
    """A real copy of the system Python with its own prefix, its stdlib linked entry by entry.

    Lets a test give the script a Python marked EXTERNALLY-MANAGED without
    changing the machine's own.
    """
    real = SYSTEM_PYTHON.resolve()
    version = real.name.removeprefix("python")
    stdlib = Path(f"/usr/lib/python{version}")
    (into / "bin").mkdir(parents=True)
    lib = into / "lib" / f"python{version}"
    lib.mkdir(parents=True)
    shutil.copy2(real, into / "bin" / "python3")
    for entry in stdlib.iterdir():
        if entry.name != "EXTERNALLY-MANAGED":
            (lib / entry.name).symlink_to(entry)
    if marker:
        (lib / "EXTERNALLY-MANAGED").write_text("[externally-managed]\nError=Use a venv.\n")
    subprocess.run(["chmod", "-R", "a+rX", str(into)], check=True)
    return into / "bin"


def externally_managed_python(tmp: Path) -> tuple[str, str]:
    """The system Python where it carries PEP 668's marker (Debian 12, Ubuntu 23.04+), else a marked copy.

    Returns the PATH to run the script with and that Python's stdlib folder.
    """
    done = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    stdlib = done.stdout.strip()
    if (Path(stdlib) / "EXTERNALLY-MANAGED").is_file():
        return BARE_PATH, stdlib
    bindir = python_farm(tmp / "marked-python", marker=True)
    return f"{bindir}:{BARE_PATH}", str(bindir.parent / "lib" / Path(stdlib).name)


def site_listing(python: str) -> dict[str, list[str]]:
    """Every site folder the system Python installs into, with what is in it."""
    code = (
        "import json, site, sysconfig; print(json.dumps(sorted({sysconfig.get_path('purelib'), "
        "sysconfig.get_path('platlib'), *site.getsitepackages()})))"
    )
    folders = json.loads(
        subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout
    )
    return {f: sorted(os.listdir(f)) if os.path.isdir(f) else [] for f in folders}


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def export_line(stdout: str) -> str:
    lines = [
        line.strip() for line in stdout.splitlines() if line.strip().startswith("export PATH=")
    ]
    assert len(lines) == 1, stdout
    return lines[0]


def without_python3_venv(
    m: Member, argv: list[str], env: dict[str, str], stdlib: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    """Run `argv` as `m` where the system Python's ensurepip and venv are gone, as on Debian without python3-venv.

    A private mount namespace lays a package that refuses to import over both
    folders (an empty one would still import, as a namespace package), so the
    machine's own Python, and the tests running beside this one, keep them.
    """
    need_root("hides ensurepip and venv in a mount namespace")
    refusing = cwd.parent / "not-installed"
    refusing.mkdir(exist_ok=True)
    (refusing / "__init__.py").write_text(
        "raise ImportError('not installed: apt install python3-venv')\n"
    )
    refusing.chmod(0o755)
    hide = " && ".join(
        f"mount --bind -o ro {shlex.quote(str(refusing))} {shlex.quote(f'{stdlib}/{name}')}"
        for name in ("ensurepip", "venv")
    )
    drop = f"exec setpriv --reuid={m.uid} --regid={pwd.getpwuid(m.uid).pw_gid} --clear-groups --"
    return subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            f'{hide} && {drop} "$@"',
            "sh",
            *argv,
        ],
        check=False,
        env=env,
        cwd=str(cwd),
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_a_fresh_member_without_python3_venv_installs_starts_upgrades_and_uninstalls(
    make_user, shared_tmp: Path
) -> None:
    """The whole life of one install, so the slow part (a real install from the index) is paid once."""
    m = make_user()
    src = checkout(shared_tmp)
    path, stdlib = externally_managed_python(shared_tmp)
    python = shutil.which("python3", path=path)
    assert python and (Path(stdlib) / "EXTERNALLY-MANAGED").is_file()
    assert not shutil.which("uv", path=path) and not shutil.which("pipx", path=path)
    before = site_listing(python)
    env = fresh_login(m, path)
    bindir, venv = m.home / ".local/bin", m.home / ".local/share/labshare/venv"
    own_uvx = bindir / "uvx"  # the member's own uvx, off PATH: never replaced, never removed
    m.run_cmd(["sh", "-c", f"mkdir -p {bindir} && printf '#!/bin/sh\\n' > {own_uvx}"], check=True)

    # The README's Quickstart, exactly as written there, from the checkout, with no venv module to lean on.
    probe = "".join(
        f"{shlex.quote(python)} -c 'import {name}' 2>/dev/null && echo '{name} is importable'; "
        for name in ("ensurepip", "venv")
    )
    done = without_python3_venv(m, ["sh", "-c", probe + quickstart()], env, stdlib, cwd=src)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is importable" not in done.stdout and "Fetching uv" in done.stdout, done.stdout
    link = bindir / "labshare"
    assert link.is_symlink() and Path(os.readlink(link)) == venv / "bin/labshare"
    assert Path(os.readlink(bindir / "uv")) == venv / "libexec/labshare/uv", (
        "labshare's uv is not on the member's PATH"
    )
    # ... and, like pip, trusts the system's certificates (a TLS-inspecting proxy's CA), by the real uv
    said = m.run_cmd(
        [
            str(bindir / "uv"),
            "run",
            "--no-project",
            "--",
            "sh",
            "-c",
            "echo trust=$UV_SYSTEM_CERTS",
        ],
        env=env,
    )
    assert said.stdout.strip().splitlines()[-1:] == ["trust=1"], said.stdout + said.stderr
    assert not own_uvx.is_symlink()
    record = json.loads((venv / "labshare-install.json").read_text())
    assert (record["method"], record["source"]) == ("venv", str(src))
    hint = m.run_cmd(
        [
            str(venv / "bin/python"),
            "-c",
            "from labshare.install_hint import reinstall_hint as h; print(h('gpu'))",
        ],
        env=env,
        check=True,
    ).stdout.strip()
    assert hint == f"run `sh {src}/scripts/install --upgrade --extra gpu`", (
        "hints must name this install's command"
    )
    line = export_line(
        done.stdout
    )  # ~/.local/bin is not on a bare PATH: the one line to add says so
    assert "~/.zprofile" in done.stdout
    assert site_listing(python) == before, "the script installed into the system Python"
    assert not list(m.home.glob(".local/lib/python3*")), "the script used pip --user"

    # The member follows the printed line; the server the Quickstart started is running.
    started = as_member(m, ["sh", "-c", f"{line}\nlabshare status --json"], env, timeout=300)
    assert started.returncode == 0, started.stdout + started.stderr
    status = json.loads(started.stdout)
    assert status["running"] is True

    again = as_member(m, ["sh", str(src / "scripts" / "install")], env)
    assert again.returncode == 0 and "already installed" in again.stdout, (
        again.stdout + again.stderr
    )

    # With the PATH line followed, labshare's own uv is on PATH: the upgrade still goes the venv's way.
    upgraded = as_member(
        m,
        ["sh", "-c", f"{line}\nsh {shlex.quote(str(src / 'scripts' / 'install'))} --upgrade"],
        env,
    )
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    assert "uv tool install" not in upgraded.stdout, upgraded.stdout
    assert "Fetching uv" not in upgraded.stdout, (
        "the upgrade fetched uv again instead of using the install's own"
    )
    after = as_member(m, ["sh", "-c", f"{line}\nlabshare status --json"], env, timeout=120)
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout)["pid"] == status["pid"], (
        "the upgrade stopped the running server"
    )
    created = as_member(m, ["sh", "-c", f"{line}\nlabshare env create demo"], env, timeout=300)
    assert created.returncode == 0, created.stdout + created.stderr
    assert site_listing(python) == before

    # Removal: labshare's things go, the member's own stay.
    kernels = m.home / ".local/share/jupyter/kernels"
    made = [kernels / "python3", *kernels.glob("labshare-demo-*")]
    assert len(made) == 2 and all((k / "kernel.json").is_file() for k in made), list(
        kernels.iterdir()
    )
    mine = kernels / "mine" / "kernel.json"
    spec = shlex.quote(
        json.dumps({"argv": ["python3"], "display_name": "Mine", "language": "python"})
    )
    m.run_cmd(["sh", "-c", f"mkdir -p {mine.parent} && echo {spec} > {mine}"], check=True)
    project = m.home / "projects" / "demo"
    kept = {p: p.read_bytes() for p in (mine, own_uvx, project / "pyproject.toml")}
    state = m.home / ".local/state/labshare"
    uninstall = ["sh", str(src / "scripts" / "install"), "--uninstall"]

    refused = as_member(m, uninstall, env, timeout=120)
    assert (
        refused.returncode != 0 and refused.stderr.count("\n") == 1 and "--yes" in refused.stderr
    ), refused.stderr
    assert link.exists() and state.is_dir() and all(k.is_dir() for k in made), (
        "a refused uninstall removed things"
    )
    assert str(venv) in refused.stdout and all(str(k) in refused.stdout for k in made), (
        "the list is incomplete"
    )

    removed = as_member(m, [*uninstall, "--yes"], env, timeout=300)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    wait_for(lambda: not processes_of({m.uid}), 30, "the member's server and kernels to end")
    for gone in (venv, link, bindir / "uv", state, m.home / ".local/share/labshare", *made):
        assert not gone.exists() and not gone.is_symlink(), (
            f"{gone} is still there: {list(gone.rglob('*'))[:5]}"
        )
    assert {p: p.read_bytes() for p in kept} == kept, "the uninstall touched the member's own files"
    assert (project / ".venv").is_dir()


@pytest.mark.slow
def test_an_old_python3_still_installs_labshare_on_a_newer_python(
    make_user, shared_tmp: Path
) -> None:
    """macOS's own python3 is 3.9: the script and its uv download run on it, and uv makes the venv from a newer one.

    The login carries no SSL_CERT_FILE: where the machine reaches the index through a
    TLS-inspecting proxy whose CA only the system store holds (this one does), uv
    must trust the system's certificates as the download did.
    """
    m = make_user()
    src = checkout(shared_tmp)
    old = shared_tmp / "old-python"
    old.mkdir()
    (old / "python3").write_text(
        "#!/bin/sh\n# fails the script's version check as a 3.9 would\n"
        'case "$*" in *"(3, 10)"*) exit 1 ;; esac\nexec /usr/bin/python3 "$@"\n'
    )
    (old / "python3").chmod(0o755)
    env = fresh_login(m, f"{old}:{BARE_PATH}")
    env.pop("SSL_CERT_FILE", None)
    done = as_member(m, ["sh", str(src / "scripts" / "install")], env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "older than labshare needs (3.10); uv takes a newer Python" in done.stdout, done.stdout
    venv = m.home / ".local/share/labshare/venv"
    version = m.run_cmd(
        [str(venv / "bin/python"), "-c", "import sys; print(sys.version_info >= (3, 10))"],
        env=env,
        check=True,
    ).stdout.strip()
    assert version == "True"
    assert m.run_cmd([str(venv / "bin/labshare"), "--version"], env=env).returncode == 0


@pytest.mark.slow
def test_system_install_serves_another_member_on_their_default_path(
    make_user, shared_tmp: Path
) -> None:
    """As root: /opt/labshare and /usr/local/bin/labshare, then their removal, in mount namespaces of the test's own.

    The namespace gives the script the machine's real /opt and /usr/local/bin
    paths without letting other tests running meanwhile see its labshare.
    """
    need_root("installs into /opt and /usr/local/bin")
    m = make_user()
    subprocess.run(
        ["usermod", "-d", str(m.home), m.user], check=True
    )  # a login lands in the test's home
    src = checkout(shared_tmp)
    opt, local_bin = shared_tmp / "opt", shared_tmp / "usr-local-bin"
    opt.mkdir()
    local_bin.mkdir()
    root_env = {
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    }
    root_env.update(
        {
            k: os.environ[k]
            for k in ("SSL_CERT_FILE", "UV_INDEX_URL", "PIP_INDEX_URL")
            if k in os.environ
        }
    )
    member_cmd = "command -v labshare && labshare start && labshare status --json && labshare stop"
    mounts = [
        f"mount --bind {shlex.quote(str(opt))} /opt",
        f"mount --bind {shlex.quote(str(local_bin))} /usr/local/bin",
    ]
    script = "\n".join(
        [
            "set -e",
            *mounts,
            "umask 077",  # root's own umask must not make the install unreadable to members
            f"sh {shlex.quote(str(src / 'scripts' / 'install'))} --system",
            "echo '== again'",
            f"sh {shlex.quote(str(src / 'scripts' / 'install'))} --system",
            "echo '== member'",
            f"runuser -l {m.user} -c {shlex.quote(member_cmd)}",
        ]
    )
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        check=False,
        env=root_env,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT + 300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    first, rest = done.stdout.split("== again\n")
    again, member_out = rest.split("== member\n")
    assert "/usr/local/bin/labshare" in first and "already installed" in again
    assert member_out.splitlines()[0] == "/usr/local/bin/labshare"
    status = json.loads(member_out[member_out.index("{\n") : member_out.rindex("}") + 1])
    assert status["running"] is True
    assert os.readlink(local_bin / "labshare") == "/opt/labshare/bin/labshare"
    for path in (opt / "labshare").rglob("*"):
        if not path.is_symlink():
            wanted = 0o005 if path.is_dir() else 0o004
            assert path.stat().st_mode & wanted == wanted, f"{path} is not readable by every member"

    # Removal, as root, in a namespace of its own: refused while a member's server runs from /opt/labshare,
    # then the install and the links it made go, nothing else.
    if not shutil.which("uv", path=root_env["PATH"].replace("/usr/local/bin:", "")):
        assert os.readlink(local_bin / "uv") == "/opt/labshare/libexec/labshare/uv", (
            "root has no uv, so labshare's is linked"
        )
    uninstall = f"sh {shlex.quote(str(src / 'scripts' / 'install'))} --system --uninstall --yes"
    member_uninstall = f"sh {shlex.quote(str(src / 'scripts' / 'install'))} --uninstall --yes"
    assert (m.home / ".local/share/jupyter/kernels/python3/kernel.json").is_file()
    script = "\n".join(
        [
            "set -e",
            *mounts,
            f"runuser -l {m.user} -c 'labshare start' >/dev/null",
            f"if {uninstall}; then exit 1; fi",
            "echo '== stopped'",
            # The member removes what labshare made in their account (stopping their server); /opt stays.
            f"runuser -l {m.user} -c {shlex.quote(member_uninstall)}",
            "test -x /opt/labshare/bin/python",
            uninstall,
        ]
    )
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        check=False,
        env=root_env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    refusal = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert (
        len(refusal) == 1 and f"labshare still runs from /opt/labshare for {m.user}" in refusal[0]
    ), done.stderr
    assert not (opt / "labshare").exists() and sorted(os.listdir(local_bin)) == [], os.listdir(
        local_bin
    )
    assert "The install for everyone in /opt/labshare stays" in done.stdout, done.stdout
    assert not (m.home / ".local/share/jupyter/kernels/python3").exists()
    assert not (m.home / ".local/state/labshare").exists()


@pytest.fixture
def index(shared_tmp: Path) -> Iterator[tuple[Path, str]]:
    """A package index in a folder (PEP 503: `simple/uv/index.html`), served on 127.0.0.1; its folder and URL."""
    root = shared_tmp / "index"
    (root / "simple" / "uv").mkdir(parents=True)
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "http.server",
            str(port),
            "--bind",
            "127.0.0.1",
            "--directory",
            str(root),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() or True,
            30,
            "the index to listen",
            ignoring=(OSError,),
        )
        yield root, f"http://127.0.0.1:{port}/simple"
    finally:
        server.kill()
        server.wait()


# A uv that makes the venv and then fails, as uv does where the index lacks labshare's dependencies.
FAILING_UV = """#!/bin/sh
case $1 in
    venv) for arg; do venv=$arg; done; mkdir -p "$venv/bin" && ln -s /usr/bin/python3 "$venv/bin/python" ;;
    *) echo "  x no labshare dependencies on this index" >&2; exit 1 ;;
esac
"""


def serve_uv(root: Path, *, tamper: bool = False) -> None:
    """A uv wheel for this machine, with FAILING_UV as its binaries, listed with its sha256 (or a wrong one)."""
    arch = platform.machine()
    name = f"uv-99.0.0-py3-none-manylinux_2_17_{arch}.manylinux2014_{arch}.whl"
    wheel = root / "simple" / "uv" / name
    with zipfile.ZipFile(wheel, "w") as archive:
        for tool in ("uv", "uvx"):
            archive.writestr(f"uv-99.0.0.data/scripts/{tool}", FAILING_UV)
        archive.writestr(
            "uv-99.0.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: uv\nVersion: 99.0.0\n"
        )
    digest = hashlib.sha256(wheel.read_bytes() + (b"tampered" if tamper else b"")).hexdigest()
    (root / "simple" / "uv" / "index.html").write_text(
        f'<a href="{name}#sha256={digest}">{name}</a>\n'
    )


def no_index_login(m: Member, tmp: Path, **extra: str) -> dict[str, str]:
    """A login with none of the host's index settings, and a temp folder of its own to find leftovers in."""
    tmp.mkdir(mode=0o1777)
    tmp.chmod(0o1777)
    env = {
        k: v
        for k, v in fresh_login(m).items()
        if k not in ("UV_INDEX_URL", "UV_DEFAULT_INDEX", "PIP_INDEX_URL")
    }
    return {**env, "TMPDIR": str(tmp), **extra}


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_a_failed_first_install_leaves_nothing_behind(make_user, shared_tmp: Path, index) -> None:
    """uv comes from the index in the member's pip.conf; labshare's install then fails, after the venv is made."""
    root, url = index
    serve_uv(root)
    m = make_user()
    src = checkout(shared_tmp)
    m.run_cmd(
        [
            "sh",
            "-c",
            f"mkdir -p ~/.config/pip && printf '[global]\\nindex-url = {url}\\n' > ~/.config/pip/pip.conf",
        ],
        check=True,
    )
    before = files_under(m.home)
    tmp = shared_tmp / "tmp"
    done = as_member(m, ["sh", str(src / "scripts" / "install")], no_index_login(m, tmp))
    assert done.returncode != 0 and "Creating" in done.stdout, done.stdout + done.stderr
    assert "no labshare dependencies" in done.stderr, "the uv from the pip.conf index did not run"
    said = errors(done.stderr)
    assert len(said) == 1 and "could not install labshare" in said[0], done.stderr
    assert files_under(m.home) == before
    assert not list(tmp.iterdir()), "the downloaded uv was left behind"


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("tampered", "does not match the sha256"),
        ("unreachable", "could not reach the package index at http://127.0.0.1:9/simple/uv/"),
    ],
)
def test_uv_from_the_index_is_checked_and_a_refusal_is_one_line(
    make_user, shared_tmp: Path, index, case: str, expected: str
) -> None:
    root, url = index
    serve_uv(root, tamper=True)
    if case == "unreachable":
        url = "http://127.0.0.1:9/simple"  # nothing listens on the discard port: refused at once
    m = make_user()
    src = checkout(shared_tmp)
    before = files_under(m.home)
    tmp = shared_tmp / "tmp"
    done = as_member(
        m, ["sh", str(src / "scripts" / "install")], no_index_login(m, tmp, PIP_INDEX_URL=url)
    )
    assert done.returncode != 0 and "Creating" not in done.stdout, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and expected in done.stderr, done.stderr
    if case == "unreachable":
        assert "set PIP_INDEX_URL" in done.stderr
    assert files_under(m.home) == before
    assert not list(tmp.iterdir())


def fake_tool(bindir: Path, name: str, log: Path, answers: str = "") -> None:
    """A stand-in `uv` or `pipx` that records its arguments and prints `answers` for queries."""
    bindir.mkdir(exist_ok=True)
    tool = bindir / name
    tool.write_text(f'#!/bin/sh\necho "{name} $*" >> {shlex.quote(str(log))}\n{answers}\n')
    tool.chmod(0o755)


@pytest.mark.parametrize(
    ("tool", "args", "expected"),
    [
        ("uv", [], "uv tool install --quiet {src}"),
        (
            "uv",
            ["--upgrade", "--extra", "gpu"],
            "uv tool install --quiet --upgrade --reinstall-package labshare {src}[gpu]",
        ),
        ("pipx", ["--extra", "gpu", "--extra", "hub"], "pipx install {src}[gpu,hub]"),
        ("pipx", ["--upgrade"], "pipx install --force {src}"),
    ],
)
def test_uv_or_pipx_is_used_where_found(
    member: Member, shared_tmp: Path, tool: str, args: list[str], expected: str
) -> None:
    src = checkout(shared_tmp)
    log = shared_tmp / "calls"
    bindir = shared_tmp / "tools"
    answers = {
        "uv": f'[ "$1 $2" = "tool dir" ] && echo {member.home}/.local/bin; exit 0',
        "pipx": f'[ "$1" = environment ] && echo {member.home}/.local/bin; exit 0',
    }
    fake_tool(bindir, tool, log, answers[tool])
    env = fresh_login(member, f"{bindir}:{BARE_PATH}")
    done = as_member(member, ["sh", str(src / "scripts" / "install"), *args], env, timeout=60)
    assert done.returncode == 0, done.stderr
    installs = [
        c for c in log.read_text().splitlines() if c.startswith(("uv tool install", "pipx install"))
    ]
    assert installs == [expected.format(src=src)]
    assert 'export PATH="$HOME/.local/bin:$PATH"' in done.stdout
    assert not (member.home / ".local/share/labshare").exists()


@pytest.mark.parametrize("tool", ["uv", "pipx"])
def test_a_uv_tool_or_pipx_install_is_removed_by_its_own_tool(
    member: Member, shared_tmp: Path, tool: str
) -> None:
    """--uninstall finds the install the way it was made and leaves removing it to that tool.

    The stand-in tool's install folder is the test's own labshare environment, so
    labshare's removal list runs for real; the tool's own uninstall is only recorded.
    """
    src = checkout(shared_tmp)
    log = shared_tmp / "calls"
    bindir, places = shared_tmp / "tools", shared_tmp / "installs"
    places.mkdir()
    (places / "labshare").symlink_to(Path(sys.executable).parent.parent)
    query = {"uv": '[ "$1 $2" = "tool dir" ]', "pipx": '[ "$1" = environment ]'}[tool]
    fake_tool(bindir, tool, log, f"{query} && echo {places}; exit 0")
    kernels = member.home / ".local/share/jupyter/kernels"
    for name, meta in (
        ("labshare-demo-0123abcd", {"labshare": {"project": str(member.home)}}),
        ("mine", {}),
    ):
        (kernels / name).mkdir(parents=True)
        (kernels / name / "kernel.json").write_text(
            json.dumps(
                {"argv": ["python3"], "display_name": name, "language": "python", "metadata": meta}
            )
        )
    state = member.home / ".local/state/labshare"
    state.mkdir(parents=True)
    env = fresh_login(member, f"{bindir}:{BARE_PATH}")
    done = as_member(
        member, ["sh", str(src / "scripts" / "install"), "--uninstall", "--yes"], env, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        f"{places}/labshare  (labshare's install, {'uv-tool' if tool == 'uv' else tool})"
        in done.stdout
    )
    removal = {"uv": "uv tool uninstall labshare", "pipx": "pipx uninstall labshare"}[tool]
    assert [c for c in log.read_text().splitlines() if "uninstall" in c] == [removal]
    assert (
        not (kernels / "labshare-demo-0123abcd").exists()
        and (kernels / "mine" / "kernel.json").is_file()
    )
    assert not state.exists()
    assert Path(sys.executable).exists(), (
        "the removal reached into the install it leaves to the tool"
    )


def test_system_needs_root_and_extras_must_be_names(make_user, shared_tmp: Path) -> None:
    m = make_user()
    src = checkout(shared_tmp)
    env = fresh_login(m)
    refused = as_member(m, ["sh", str(src / "scripts" / "install"), "--system"], env, timeout=60)
    assert refused.returncode != 0 and "needs root" in refused.stderr
    bad = as_member(
        m, ["sh", str(src / "scripts" / "install"), "--extra", "gpu;rm -rf ~"], env, timeout=60
    )
    assert bad.returncode != 0 and "--extra takes names" in bad.stderr
    assert not (m.home / ".local").exists()


@pytest.mark.quick
def test_hints_name_the_command_for_how_labshare_was_installed(tmp_path: Path) -> None:
    """The record scripts/install leaves picks the command every install, upgrade and extra hint names."""
    from labshare.install_hint import InstallRecord, install_command

    checkout_path = tmp_path / "my labshare"
    InstallRecord(method="venv", source=str(checkout_path), extras=("hub",)).write(tmp_path)
    record = InstallRecord.read(tmp_path)
    assert install_command("gpu", record=record) == (
        f"sh '{checkout_path}/scripts/install' --upgrade --extra hub --extra gpu"
    )
    system = InstallRecord(method="system", source="/srv/labshare")
    assert (
        install_command("hub", record=system)
        == "sudo sh /srv/labshare/scripts/install --system --upgrade --extra hub"
    )
    assert install_command(record=None) == "sh scripts/install --upgrade"
    (tmp_path / "labshare-install.json").write_text(
        '{"version": 99, "method": "venv", "source": "/x"}'
    )
    assert InstallRecord.read(tmp_path) is None, (
        "a record of a newer format must fall back, not mislead"
    )


def load_bootstrap():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bootstrap_uv", REPO / "scripts" / "bootstrap_uv.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.quick
def test_bootstrap_reads_the_index_as_pip_and_uv_would(tmp_path: Path) -> None:
    bootstrap = load_bootstrap()
    home = tmp_path / "home"
    (home / ".config/pip").mkdir(parents=True)
    (home / ".config/pip/pip.conf").write_text(
        "[global]\nindex-url = https://global.example/simple\n"
        "[install]\nindex-url = https://install.example/simple/\n"
    )
    base = {"HOME": str(home), "XDG_CONFIG_DIRS": str(tmp_path / "none")}
    assert bootstrap.index_url(base) == "https://install.example/simple"
    assert (
        bootstrap.index_url({**base, "PIP_INDEX_URL": "https://pip.example/simple"})
        == "https://pip.example/simple"
    )
    assert (
        bootstrap.index_url(
            {
                **base,
                "PIP_INDEX_URL": "https://pip.example/simple",
                "UV_DEFAULT_INDEX": "https://uv.example/simple",
            }
        )
        == "https://uv.example/simple"
    )
    assert bootstrap.index_url({**base, "PIP_CONFIG_FILE": os.devnull}) == bootstrap.PYPI

    # The same file listed both ways (PEP 691 JSON, PEP 503 HTML); yanked files are never picked.
    arch = platform.machine()
    name = f"uv-0.9.10-py3-none-manylinux_2_17_{arch}.manylinux2014_{arch}.whl"
    digest = "ab" * 32
    listed = json.dumps(
        {
            "files": [
                {"filename": name, "url": f"../../files/{name}", "hashes": {"sha256": digest}},
                {
                    "filename": name.replace("0.9.10", "0.9.11"),
                    "url": "x",
                    "hashes": {"sha256": digest},
                    "yanked": True,
                },
                {
                    "filename": name.replace("0.9.10", "0.9.9"),
                    "url": "y",
                    "hashes": {"sha256": digest},
                },
            ]
        }
    ).encode()
    page = (
        f'<a href="../../files/{name}#sha256={digest}">{name}</a>'
        f'<a href="z#sha256={digest}" data-yanked="">{name.replace("0.9.10", "0.9.11")}</a>'
    ).encode()
    base_url = "https://index.example/simple/uv/"
    for body, kind in ((listed, "application/vnd.pypi.simple.v1+json"), (page, "text/html")):
        best = bootstrap.pick(bootstrap.wheel_files(body, kind, base_url), "the index")
        assert best == {
            "filename": name,
            "url": f"https://index.example/files/{name}",
            "sha256": digest,
        }
    unhashed = bootstrap.wheel_files(f'<a href="{name}">{name}</a>'.encode(), "text/html", base_url)
    with pytest.raises(bootstrap.Refused, match="gives no sha256"):
        bootstrap.pick(unhashed, "the index")


@pytest.mark.quick
def test_an_index_login_goes_to_its_own_host_only_and_is_never_shown() -> None:
    """pip and uv take `https://user:password@host/simple`; the download must too, and keep it quiet."""
    boot = load_bootstrap()
    shown = boot.without_login("https://alice:s%40cret@index.lab.example:8443/simple")
    assert shown == "https://index.lab.example:8443/simple"
    assert base64.b64decode(boot._LOGINS["index.lab.example:8443"]) == b"alice:s@cret"
    assert boot.without_login("https://files.example/uv.whl") == "https://files.example/uv.whl"
    assert "files.example" not in boot._LOGINS
