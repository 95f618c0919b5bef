"""The member's own "Python 3 (default)" kernel, with a real server, real uv and real kernels over REST.

The point of it: nothing a member does in a notebook can change labshare's own
environment, the one JupyterLab itself runs from.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import BIN, Member, lab_of
from jupyter_api import plain
from test_envs import lab

from labshare.gpus.gate import unwrap

OWN_PREFIX = Path(sys.prefix).resolve()  # labshare's install, as the member's server runs it


def default_env(m: Member) -> Path:
    return m.home / ".local/share/labshare/envs/default"


def user_kernels(m: Member) -> Path:
    return m.home / ".local/share/jupyter/kernels"


def runs_in_labshare(spec: dict) -> bool:
    """Whether Jupyter would start this spec's kernel with labshare's own interpreter (the GPU gate aside)."""
    argv0 = unwrap(spec["argv"])[0]
    if (
        "/" not in argv0
    ):  # jupyter_client swaps python, python3, python3.X for its own sys.executable
        return argv0.startswith("python")
    return (
        Path(argv0).resolve().is_relative_to(OWN_PREFIX)
        or Path(argv0).parent.resolve() == BIN.resolve()
    )


def tiny_wheel(folder: Path, module: str = "labshare_tiny") -> Path:
    """A one-module wheel, built by hand so `%pip install` needs no network and no build backend."""
    info = f"{module}-1.0.dist-info"
    files = {
        f"{module}.py": b"WHERE = __file__\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 1.0\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [
        f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
        f"{len(data)}"
        for name, data in files.items()
    ]
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = folder / f"{module}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    wheel.chmod(0o644)
    return wheel


def own_environment() -> tuple[str, dict[str, tuple[int, int]]]:
    """labshare's environment as `uv pip freeze` lists it, and every file in it with its size and mtime."""
    freeze = subprocess.run(
        [str(BIN / "uv"), "pip", "freeze", "--python", sys.executable],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    files = {}
    for path in OWN_PREFIX.rglob("*"):
        if path.is_file() and not path.is_symlink():
            st = path.stat()
            files[str(path)] = (st.st_size, st.st_mtime_ns)
    return freeze, files


def test_default_kernel_is_the_members_own_and_pip_there_leaves_labshare_alone(
    lab: Member, shared_tmp: Path
) -> None:
    done = lab.run("start")
    assert done.returncode == 0, done.stderr
    assert "Python 3 (default)" in done.stdout and str(default_env(lab)) in done.stdout
    server = lab_of(lab)
    listed = server.ok("GET", "/api/kernelspecs")
    assert listed["default"] == "python3"
    assert listed["kernelspecs"]["python3"]["spec"]["display_name"] == "Python 3 (default)"
    offered = {name: s["spec"] for name, s in listed["kernelspecs"].items()}
    assert not [name for name, spec in offered.items() if runs_in_labshare(spec)]

    kernel = server.start_kernel()  # what the launcher's first tile and any "python3" notebook get
    prefix = Path(server.execute(kernel, "import sys; print(sys.prefix)").strip()).resolve()
    assert prefix == default_env(lab).resolve() and not prefix.is_relative_to(OWN_PREFIX)

    wheel = tiny_wheel(shared_tmp)
    before = own_environment()
    out = server.execute(kernel, f"%pip install --no-index {wheel}", timeout=180)
    assert "+ labshare-tiny==1.0" in plain(out) and f"changed {default_env(lab)} only" in out, (
        out
    )  # labshare's %pip: uv
    where = server.execute(kernel, "import labshare_tiny; print(labshare_tiny.WHERE)").strip()
    assert Path(where).resolve().is_relative_to(default_env(lab).resolve())
    assert own_environment() == before, "a member's %pip install changed labshare's own environment"


def test_env_list_shows_it_and_a_removed_one_comes_back_on_the_next_start(lab: Member) -> None:
    lab.run("start", check=True)
    entries = {e["name"]: e for e in lab.json("env", "list")}
    mine = entries["python3"]
    assert (
        mine["display_name"] == "Python 3 (default)"
        and mine["owner"] == "labshare"
        and mine["status"] == "ok"
    )
    assert mine["project"] == str(default_env(lab)) and mine["manager"] == "uv"
    assert not [
        e for e in entries.values() if Path(e["resource_dir"]).resolve().is_relative_to(OWN_PREFIX)
    ]

    removed = lab.run("env", "remove", "default", "--delete-files", "--yes", "--json")
    assert removed.returncode == 0, removed.stderr
    assert not default_env(lab).exists() and not (user_kernels(lab) / "python3").exists()
    server = lab_of(lab)
    assert (
        "python3" not in server.ok("GET", "/api/kernelspecs")["kernelspecs"]
    )  # not labshare's in its place
    refused = server.call("POST", "/api/kernels", {"name": "python3"})
    assert refused.status >= 400

    again = lab.run("start")  # the server is still up; start puts the kernel back
    assert again.returncode == 0 and "Python 3 (default)" in again.stdout, again.stderr
    kernel = server.start_kernel("python3")
    prefix = Path(server.execute(kernel, "import sys; print(sys.prefix)").strip())
    assert prefix.resolve() == default_env(lab).resolve()


def test_a_members_own_python3_is_kept_as_it_is(lab: Member) -> None:
    theirs = user_kernels(lab) / "python3"
    theirs.mkdir(parents=True)
    spec = {
        "argv": ["/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (mine)",
        "language": "python",
    }
    (theirs / "kernel.json").write_text(json.dumps(spec))
    done = lab.run("start")
    assert done.returncode == 0, done.stderr
    assert "default" not in done.stdout
    assert (
        json.loads((theirs / "kernel.json").read_text()) == spec and not default_env(lab).exists()
    )
    offered = lab_of(lab).ok("GET", "/api/kernelspecs")["kernelspecs"]
    assert offered["python3"]["spec"]["display_name"] == "Python 3 (mine)"


def test_a_default_kernel_that_cannot_be_made_does_not_stop_the_server(
    member: Member, tmp_path: Path
) -> None:
    member.extra_env.update({"UV_CACHE_DIR": str(tmp_path / "empty-cache"), "UV_OFFLINE": "1"})
    done = member.run("start")
    assert done.returncode == 0, done.stderr
    assert "Could not make your Python 3 (default) kernel" in done.stdout
    assert member.json("status")["running"] is True
    assert not default_env(member).exists() and not (user_kernels(member) / "python3").exists()
    assert "python3" not in lab_of(member).ok("GET", "/api/kernelspecs")["kernelspecs"]
