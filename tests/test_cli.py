"""The command line's own contract, in-process and in seconds: parsing, error lines, exit codes, JSON shapes.

`labshare.cli.main` runs here as the `labshare` script runs it, in an
isolated HOME with nothing running, so what is checked is what a user or a
script sees: which stream, which words, which exit code.  The real-process
tests (test_server_*, test_connect*) check the same commands with real
servers behind them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from labshare import __version__
from labshare.cli import SECTIONS, cli, face, main
from labshare.errors import AuthFailed, ExitCode, LabshareError

SERVER = [
    "start",
    "stop",
    "restart",
    "status",
    "info",
    "logs",
    "env",
    "kernels",
    "ps",
    "top",
    "gpus",
    "run",
    "doctor",
    "notify",
]
LAPTOP = ["connect", "fleet", "completion"]
ADMIN = ["admin", "hub-config"]
REINSTALL = "reinstall labshare: run `sh scripts/install --upgrade` in your labshare checkout"  # no install record


@dataclass
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> dict:
        assert self.out.strip(), f"nothing on stdout; stderr: {self.err}"
        return json.loads(self.out)


def isolated_env(home: Path) -> dict[str, str]:
    return {
        "HOME": str(home),
        "XDG_STATE_HOME": str(home / "state"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "LABSHARE_SITE_CONFIG": str(home / "site.toml"),
    }


@pytest.fixture
def labshare(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> Callable[..., Ran]:
    """`labshare ARGS` in this process, in an empty HOME: its exit code, stdout and stderr."""
    for key, value in isolated_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    for key in (
        "XDG_RUNTIME_DIR",
        "JUPYTER_PATH",
        "JUPYTER_DATA_DIR",
        "JUPYTER_CONFIG_DIR",
        "JUPYTER_RUNTIME_DIR",
    ):
        monkeypatch.delenv(key, raising=False)

    def run(*args: str) -> Ran:
        capsys.readouterr()
        with pytest.raises(SystemExit) as done:
            main(list(args))
        out, err = capsys.readouterr()
        return Ran(int(done.value.code or 0), out, err)

    return run


@pytest.fixture
def command(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Put a stand-in command on `labshare` that raises what the test gives (under the test's name)."""

    def add(exc: BaseException, name: str = "boom") -> None:
        @click.command(name)
        @click.option("--json", "as_json", is_flag=True)
        @click.argument("words", nargs=-1)
        def raising(as_json: bool, words: tuple[str, ...]) -> None:
            raise exc

        monkeypatch.setitem(cli.commands, name, raising)

    return add


def help_sections(text: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            current = sections.setdefault(line[:-1], [])
        elif current is not None and line.startswith("  ") and not line.startswith("   "):
            current.append(line.split()[0])
    return sections


@pytest.mark.quick
def test_help_lists_every_command_in_its_section(labshare) -> None:
    done = labshare("--help")
    assert done.code == 0 and done.err == ""
    sections = help_sections(done.out)
    assert sections["Member, on the server"] == SERVER
    assert sections["Member, on the laptop"] == LAPTOP
    assert sections["Admin"] == ADMIN
    assert sections["Run by JupyterHub"] == ["singleuser"]
    assert labshare("-h").out == done.out


@pytest.mark.parametrize(
    "group, commands",
    [
        ("env", ["adopt", "create", "list", "remove"]),
        ("admin", ["check", "notices", "ports", "stop"]),
        ("kernels", ["prune"]),
    ],
)
@pytest.mark.quick
def test_group_help_lists_its_commands(labshare, group: str, commands: list[str]) -> None:
    done = labshare(group, "--help")
    assert done.code == 0
    assert help_sections(done.out)["Commands"] == commands


@pytest.mark.quick
def test_version(labshare) -> None:
    done = labshare("--version")
    assert (done.code, done.out, done.err) == (0, f"labshare, version {__version__}\n", "")


@pytest.mark.quick
def test_unknown_option_is_a_usage_error(labshare) -> None:
    done = labshare("status", "--bogus")
    assert done.code == ExitCode.USAGE == 2 and done.out == ""
    assert done.err.startswith("Usage: labshare status [OPTIONS]\n")
    assert done.err.rstrip().endswith("Error: No such option '--bogus'.")


@pytest.mark.quick
def test_unknown_option_with_json_is_one_json_object(labshare) -> None:
    done = labshare("status", "--bogus", "--json")
    assert done.code == 2 and done.err == ""
    assert done.json() == {
        "error": {
            "message": "No such option '--bogus'.",
            "exit_code": 2,
            "detail": "Usage: labshare status [OPTIONS]",
        }
    }


@pytest.mark.quick
def test_bad_value(labshare) -> None:
    done = labshare("start", "--port", "eighty")
    assert done.code == 2 and done.out == ""
    assert "Invalid value for '--port': 'eighty' is not a valid integer." in done.err
    error = labshare("ps", "--sort", "size", "--json").json()["error"]
    assert error["exit_code"] == 2 and error["message"].startswith(
        "Invalid value for '--sort': 'size' is not one of"
    )


@pytest.mark.quick
def test_unknown_command(labshare) -> None:
    done = labshare("strat")
    assert done.code == 2 and "No such command 'strat'." in done.err
    assert (
        labshare("env", "nosuch", "--json").json()["error"]["message"]
        == "No such command 'nosuch'."
    )


@pytest.mark.quick
def test_singleuser_outside_a_hub_says_what_it_is_for(labshare) -> None:
    done = labshare("singleuser")
    assert done.code != 0 and done.out == ""
    assert done.err.strip() == (
        "labshare: error: `labshare singleuser` is the command JupyterHub runs for a member's "
        "server (it needs $JUPYTERHUB_SERVICE_URL); to start your own server, run `labshare start`."
    )


@pytest.mark.quick
def test_status_when_nothing_runs(labshare) -> None:
    done = labshare("status", "--json")
    assert done.code == ExitCode.NOT_RUNNING == 3 and done.err == ""
    status = done.json()
    assert status["running"] is False and status["pid"] is None and status["mode"] is None
    assert "error" not in status
    text = labshare("status")
    assert text.code == 3 and text.out.strip() and "error" not in text.err
    assert labshare("info", "--json").code == 3


@pytest.mark.quick
def test_labshare_error_text_and_json(labshare) -> None:
    done = labshare("env", "remove", "nosuch")
    line = "labshare: error: No kernel called 'nosuch'; `labshare env list` shows the names and projects."
    assert (done.code, done.out, done.err) == (1, "", line + "\n")
    done = labshare("env", "remove", "nosuch", "--json")
    assert done.code == 1 and done.err == ""
    assert done.json() == {
        "error": {"message": line.removeprefix("labshare: error: "), "exit_code": 1}
    }


@pytest.mark.quick
def test_error_detail_and_exit_code_are_kept(labshare, command) -> None:
    command(
        AuthFailed(
            "ssh could not log in to gpu1.", detail="Permission denied (publickey).\nsecond line"
        )
    )
    done = labshare("boom")
    assert done.code == ExitCode.AUTH_FAILED == 5
    assert done.err == (
        "labshare: error: ssh could not log in to gpu1.\n"
        "  Permission denied (publickey).\n  second line\n"
    )
    done = labshare("boom", "--json")
    assert done.code == 5 and done.err == ""
    assert done.json() == {
        "error": {
            "message": "ssh could not log in to gpu1.",
            "exit_code": 5,
            "detail": "Permission denied (publickey).\nsecond line",
        }
    }


@pytest.mark.quick
def test_internal_error(labshare, command) -> None:
    command(KeyError("pid"))
    done = labshare("boom")
    assert done.code == ExitCode.INTERNAL == 70 and done.out == ""
    assert done.err == (
        "labshare: internal error: KeyError: 'pid' "
        "(run again with --debug for the traceback and report it)\n"
    )
    assert labshare("boom", "--json").json() == {
        "error": {
            "message": "internal error: KeyError: 'pid' (run again with --debug for the traceback and report it)",
            "exit_code": 70,
        }
    }
    debug = labshare("--debug", "boom")
    assert debug.code == 70 and debug.err.startswith("Traceback") and debug.err.endswith(done.err)


@pytest.mark.quick
def test_interrupted_and_aborted(labshare, command) -> None:
    command(click.exceptions.Abort())
    assert labshare("boom") == Ran(ExitCode.INTERRUPTED, "", "Aborted.\n")
    assert labshare("boom", "--json") == Ran(
        130, '{\n  "error": {\n    "message": "Aborted.",\n    "exit_code": 130\n  }\n}\n', ""
    )
    command(KeyboardInterrupt())  # click makes Ctrl-C in a command an Abort, after a newline
    assert labshare("boom") == Ran(130, "", "\nAborted.\n")


@pytest.mark.quick
def test_connect_json_ends_with_an_error_event(labshare, tmp_path: Path) -> None:
    done = labshare("connect", "--json", "--local-port", "0", "gpu1")
    assert done.code == 2 and done.err == ""
    event = json.loads(done.out)
    assert event == {
        "event": "error",
        "exit_code": 2,
        "message": "Invalid value for '--local-port': 0 is not in the range 1<=x<=65535.",
        "detail": "Usage: labshare connect [OPTIONS] [USER@]HOST",
    }
    assert done.out.count("\n") == 1
    config = tmp_path / "config" / "labshare" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("[hosts.gpu1\n")
    done = labshare("connect", "--print", "--json", "gpu1")
    (line,) = done.out.splitlines()
    event = json.loads(line)
    assert done.code == 1 and event["event"] == "error" and event["exit_code"] == 1
    assert "is not valid TOML" in event["message"]


@pytest.mark.quick
def test_connect_without_json_keeps_the_text_face(labshare, tmp_path: Path) -> None:
    config = tmp_path / "config" / "labshare" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("[hosts.gpu1\n")
    done = labshare("connect", "--print", "gpu1")
    assert done.code == 1 and done.out == ""
    assert done.err.startswith("labshare: error: ") and "is not valid TOML" in done.err


@pytest.mark.quick
def test_a_command_whose_module_is_missing(labshare, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "commands", {})
    monkeypatch.setitem(sys.modules, "labshare.cli.top", None)
    listed = labshare("--help")
    assert listed.code == 0
    assert help_sections(listed.out)["Member, on the server"] == SERVER
    assert "top      (unavailable: module 'labshare.cli.top' is missing)" in listed.out
    line = (
        f"`labshare top` cannot run: the Python module 'labshare.cli.top' is missing; {REINSTALL}."
    )
    assert labshare("top", "--once") == Ran(1, "", f"labshare: error: {line}\n")
    assert labshare("top", "--json").json() == {"error": {"message": line, "exit_code": 1}}
    assert labshare("status", "--json").code == 3


@pytest.mark.quick
def test_a_subcommand_whose_module_is_missing(labshare, monkeypatch: pytest.MonkeyPatch) -> None:
    admin = cli.get_command(click.Context(cli), "admin")
    monkeypatch.setattr(admin, "commands", {})
    monkeypatch.setitem(sys.modules, "labshare.cli.admin.ports", None)
    assert help_sections(labshare("admin", "--help").out)["Commands"] == [
        "check",
        "notices",
        "ports",
        "stop",
    ]
    done = labshare("admin", "ports", "--json")
    assert done.code == 1
    assert done.json()["error"]["message"].startswith(
        "`labshare admin ports` cannot run: the Python module 'labshare.cli.admin.ports' is missing;"
    )


@pytest.mark.quick
def test_a_module_missing_while_a_command_runs(labshare, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "click.shell_completion", None)
    line = f"`labshare completion` cannot run: the Python module 'click.shell_completion' is missing; {REINSTALL}."
    assert labshare("completion", "bash") == Ran(1, "", f"labshare: error: {line}\n")


@pytest.mark.parametrize(
    "args, expected",
    [
        (["status"], "text"),
        (["status", "--json"], "json"),
        (["--debug", "env", "list", "--json"], "json"),
        (["connect", "--json", "gpu1"], "events"),
        (["--debug", "connect", "gpu1", "--json"], "events"),
        (["env", "create", "x", "--", "--json"], "text"),
    ],
)
@pytest.mark.quick
def test_face(args: list[str], expected: str) -> None:
    assert face(args) == expected


def test_status_imports_no_other_command(tmp_path: Path) -> None:
    """`labshare status` must stay quick: it loads its own module, not every command's."""
    others = {
        path.partition(":")[0] for commands in SECTIONS.values() for path in commands.values()
    }
    others.discard("labshare.cli.status")
    probe = (
        "import sys\nfrom labshare.cli import main\ntry:\n    main(['status', '--json'])\n"
        "except SystemExit as e:\n    print(e.code, sorted(m for m in sys.modules if m.startswith('labshare')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, **isolated_env(tmp_path)},
    )
    code, loaded = done.stdout.strip().splitlines()[-1].split(" ", 1)
    assert code == "3", done.stderr
    assert "'labshare.cli.status'" in loaded
    assert not [m for m in others if f"'{m}'" in loaded], loaded


@pytest.mark.quick
def test_a_command_that_raises_labshare_error_is_not_internal(labshare, command) -> None:
    command(LabshareError("Cannot create /nowhere.", exit_code=ExitCode.USAGE))
    assert labshare("boom") == Ran(2, "", "labshare: error: Cannot create /nowhere.\n")
