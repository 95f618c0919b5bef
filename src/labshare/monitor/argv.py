"""What a command line is: a Jupyter server, labshare's supervisor, a kernel, or none of them.

`/proc/PID/cmdline` is the one thing every user may read about every
process, so `ps` and `doctor` both decide by it, and both decide here:
two recognisers had come to disagree about `jupyter lab build`.  The rules
follow traitlets, which parses every Jupyter command line: a subcommand is
only ever the first argument after the app, and `--help` or `--version`
before a `--` makes the app print and exit instead of serving.
"""

from __future__ import annotations

import os

from labshare.gpus.gate import Gated
from labshare.jupyterside import lab, singleuser
from labshare.server import lab as former_lab

SUPERVISOR_MODULE = "labshare.server.supervise"
_SCRIPTS = {
    "jupyter-lab": "lab",
    "jupyter-notebook": "notebook",
    "jupyter-server": "server",
    "jupyter-nbclassic": "notebook",
}
_SUBCOMMANDS = {"lab": "lab", "notebook": "notebook", "server": "server", "nbclassic": "notebook"}
_MODULES = {
    "jupyterlab": "lab",
    "notebook": "notebook",
    "jupyter_server": "server",
    "nbclassic": "notebook",
    lab.__name__: "lab",
    former_lab.__name__: "lab",
    singleuser.__name__: "lab",
}
# The apps' own subcommands (`jupyter lab build`, `jupyter server list`…): short-lived tools, not servers.
_TOOLS = {
    "help",
    "list",
    "stop",
    "password",
    "extension",
    "labextension",
    "build",
    "clean",
    "licenses",
    "path",
    "paths",
    "workspace",
    "workspaces",
}
_EXITS_AT_ONCE = {"-h", "--help", "--help-all", "--version", "-V", "--generate-config"}
_TOKEN_KEYS = ("identityprovider.token", "serverapp.token", "notebookapp.token", "token")


def _app_args(argv: list[str]) -> tuple[str, list[str]] | None:
    """The server kind a command line starts, and the arguments that app parses."""
    for i, arg in enumerate(argv[:3]):
        base = os.path.basename(arg)
        if base in _SCRIPTS:
            return _SCRIPTS[base], argv[i + 1 :]
        if base == "jupyter" and argv[i + 1 : i + 2] and argv[i + 1] in _SUBCOMMANDS:
            return _SUBCOMMANDS[argv[i + 1]], argv[i + 2 :]
        if arg == "-m" and i + 1 < len(argv):
            module = argv[i + 1]
            if module in _MODULES:
                return _MODULES[module], argv[i + 2 :]
            if module == "jupyter" and argv[i + 2 : i + 3] and argv[i + 2] in _SUBCOMMANDS:
                return _SUBCOMMANDS[argv[i + 2]], argv[i + 3 :]
    return None


def server_kind(argv: list[str]) -> str | None:
    """ "lab", "notebook" or "server" when `argv` runs a Jupyter server, else None."""
    found = _app_args(argv)
    if found is None:
        return None
    kind, rest = found
    if rest[:1] and rest[0] in _TOOLS:
        return None
    parsed = rest[: rest.index("--")] if "--" in rest else rest
    if any(a in _EXITS_AT_ONCE for a in parsed):
        return None
    return kind


def spawned_by_hub(argv: list[str]) -> bool:
    """A labshare server that JupyterHub started (`labshare singleuser`): the hub, not a supervisor, restarts it."""
    return any(
        a == "-m" and argv[i + 1 : i + 2] == [singleuser.__name__] for i, a in enumerate(argv[:3])
    )


def is_supervisor(argv: list[str]) -> bool:
    return any(
        a == "-m" and argv[i + 1 : i + 2] == [SUPERVISOR_MODULE] for i, a in enumerate(argv[:3])
    )


def connection_file(argv: list[str]) -> str | None:
    """The kernel connection file a kernel was started with (`-f PATH`), if `argv` is a kernel.

    labshare's GPU gate names the kernel's command on its own command line,
    but is not the kernel: the kernel `exec`s from it and shows its own
    command line, and the watcher the gate leaves behind keeps the gate's.
    """
    if Gated.of(argv) is not None:
        return None
    for i, arg in enumerate(argv):
        path = None
        if arg in ("-f", "--f", "--connection-file") and i + 1 < len(argv):
            path = argv[i + 1]
        elif arg.startswith(("--f=", "--connection-file=", "--KernelApp.connection_file=")):
            path = arg.split("=", 1)[1]
        if path and os.path.basename(path).startswith("kernel-") and path.endswith(".json"):
            return path
    return None


def kernel_id(connection: str | None) -> str | None:
    if not connection:
        return None
    return os.path.basename(connection)[len("kernel-") : -len(".json")]


def options(argv: list[str]) -> dict[str, str]:
    """Jupyter's `--Class.trait=value`, `--Class.trait value` and `--alias value` options, keys lower-cased."""
    opts: dict[str, str] = {}
    for i, arg in enumerate(argv):
        if not arg.startswith("--"):
            continue
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                value = argv[i + 1]
            else:
                continue
        opts[key.lower()] = value
    return opts


def first(opts: dict[str, str], *keys: str) -> str | None:
    for key in keys:
        if key in opts:
            return opts[key]
    return None


def listen_port(opts: dict[str, str]) -> int | None:
    port = first(opts, "serverapp.port", "notebookapp.port", "port")
    return int(port) if port and port.isdigit() else None


def listen_socket(opts: dict[str, str]) -> str | None:
    return first(opts, "serverapp.sock", "notebookapp.sock", "sock") or None


def root_dir(opts: dict[str, str]) -> str | None:
    return first(
        opts,
        "serverapp.root_dir",
        "notebookapp.notebook_dir",
        "serverapp.notebook_dir",
        "notebook-dir",
    )


def token_required(opts: dict[str, str]) -> bool | None:
    """False when the command line turns the token off (`--IdentityProvider.token=''`), else unknown."""
    value = first(opts, *_TOKEN_KEYS)
    if value is None:
        return None
    return value.strip("'\"") != ""
