"""labshare starts JupyterLab through jupyterside/lab.py, which leaves out the import of rfc3987_syntax.

The control case runs first: if JupyterLab stops importing it (jsonschema
made it lazy, or jupyter-events dropped the extra), it fails and says the
launcher can go.
"""

from __future__ import annotations

import json
import subprocess
import sys

import psutil
import pytest
from conftest import Member, lab_of, wait_for

from labshare.monitor import argv

# After the app has run (here `--version`, which exits), what the server process has loaded.
PROBE = """
import json, runpy, sys
sys.argv = ["lab", "--version"]
try:
    runpy.run_module({module!r}, run_name="__main__")
except SystemExit:
    pass
from jsonschema import Draft7Validator
print(json.dumps({{"loaded": "rfc3987_syntax" in sys.modules and sys.modules["rfc3987_syntax"] is not None,
                  "formats": sorted(Draft7Validator.FORMAT_CHECKER.checkers)}}))
"""


def loaded(module: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def plain() -> dict:
    return loaded("jupyterlab")


def test_plain_jupyterlab_compiles_the_iri_grammars_at_import(plain: dict) -> None:
    assert plain["loaded"] is True and "iri" in plain["formats"]


def test_the_launcher_leaves_out_only_the_iri_formats(plain: dict) -> None:
    ours = loaded("labshare.jupyterside.lab")
    assert ours["loaded"] is False
    assert set(plain["formats"]) - set(ours["formats"]) == {"iri", "iri-reference"}


NODE = """#!/bin/sh
echo "$*" >> "$(dirname "$0")/calls"
exit 1
"""


def test_start_runs_jupyterlab_through_the_launcher_which_never_runs_node(member: Member) -> None:
    """Lab runs `node yarn.js config` at every start wherever Node.js is on the PATH; labshare's does not."""
    fake = member.home / "fake-node"
    fake.mkdir()
    (fake / "node").write_text(NODE)
    (fake / "node").chmod(0o755)
    member.extra_env["PATH"] = f"{fake}:{member.env['PATH']}"
    control = [
        sys.executable,
        "-c",
        "from jupyterlab.commands import get_app_version; get_app_version()",
    ]
    member.run_cmd(control, check=True)
    assert "config" in (fake / "calls").read_text()  # the control: plain JupyterLab asks node
    (fake / "calls").unlink()
    member.run("start", check=True)
    try:
        cmdline = psutil.Process(member.json("status")["pid"]).cmdline()
        assert (
            cmdline[1:3] == ["-m", "labshare.jupyterside.lab"]
            and argv.server_kind(cmdline) == "lab"
        ), cmdline
        assert lab_of(member).call("GET", "/lab").status == 200
        calls = (fake / "calls").read_text() if (fake / "calls").exists() else ""
        assert "config" not in calls, calls
    finally:
        member.run("stop", check=True)


def former(arg: str) -> str:
    """An argument as the labshare before the move wrote it: its modules under server/, the cards `allowed`."""
    return arg.replace("labshare.jupyterside.", "labshare.server.").replace('"gpus":', '"allowed":')


def test_a_server_started_before_the_move_restarts_under_its_stored_names(member: Member) -> None:
    """A supervisor of the previous labshare restarts Jupyter from the argv it stored, naming `labshare.server.*`.

    That command line, run by this labshare, is a labshare server: output keeping and the GPU notices
    answer, and a kernel started there is recorded, so it will survive the next restart.
    """
    member.run("start", check=True)
    lab = lab_of(member)
    jupyter = psutil.Process(member.json("status")["pid"])
    stored = [former(arg) for arg in jupyter.cmdline()]
    environ = jupyter.environ()
    member.run("stop", check=True)
    assert stored[1:3] == ["-m", "labshare.server.lab"] and argv.server_kind(stored) == "lab"
    assert any('"allowed": null' in arg for arg in stored), stored
    old = member.popen(
        stored, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(
            lambda: lab.call("GET", "/api/status").status == 200,
            what="the server under its former names",
            ignoring=(OSError,),
        )
        assert lab.call("GET", "/api/labshare/outputs").status == 200
        assert lab.call("GET", "/api/labshare/gpu-notices").status == 200
        kernel_id = lab.start_kernel()
        wait_for(
            lambda: (member.state_dir / "kernels" / f"{kernel_id}.json").exists(),
            what="the kernel's record",
        )
    finally:
        old.terminate()
        old.wait(timeout=30)
        member.reap()
