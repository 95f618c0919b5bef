"""The `ssh` command lines `labshare connect` runs, and nothing else.

We drive the system OpenSSH client rather than a Python SSH library so that
`~/.ssh/config` aliases, agents, ProxyJump, 2FA prompts and known_hosts work
exactly as in a plain `ssh`.  Host-key checking is never touched.

Two ways to hold the tunnel:
- *own master* (the default on Linux/macOS): one `ssh -M -N` process per
  `connect`, with its control socket in a private 0700 directory; the info
  call and the port forward go through it, so a password or 2FA prompt is
  answered once.  `ControlPersist=no` keeps it in the foreground, so it ends
  with `connect`.
- *plain* (Windows, whose OpenSSH has no multiplexing, or when the user's own
  ssh config already sets ControlMaster, which we then leave alone): the
  tunnel is a `ssh -N -L` process and the info call a separate `ssh`.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from labshare import proc
from labshare.connect import dial
from labshare.errors import LabshareError
from labshare.files import ensure_private_dir
from labshare.paths import Paths

# The exit code and stderr marker of the remote lookup when labshare is nowhere to be found.
NOT_FOUND_CODE = 127
NOT_FOUND_MARK = "labshare-connect: labshare not found"


@dataclass(frozen=True)
class Target:
    """Where to connect: the destination as the user typed it, plus `-o` options to pass on."""

    destination: str
    options: tuple[str, ...] = ()
    ssh: str = dial.SSH

    def option_args(self) -> list[str]:
        out: list[str] = []
        for opt in self.options:
            out += ["-o", opt]
        return out


@dataclass(frozen=True)
class Forward:
    """`-L` spec: a local TCP port on 127.0.0.1 to the server's socket or its loopback port."""

    local_port: int
    remote_socket: str | None = None
    remote_port: int | None = None

    def spec(self) -> str:
        return dial.forward_spec(self.local_port, self.remote_socket, self.remote_port)

    @property
    def remote(self) -> str:
        return self.remote_socket or f"127.0.0.1:{self.remote_port}"


@dataclass(frozen=True)
class Plan:
    """How this `connect` talks ssh: with its own control socket, or plainly."""

    target: Target
    control_path: Path | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def multiplexed(self) -> bool:
        return self.control_path is not None

    def _base(self) -> list[str]:
        return [self.target.ssh, *self.target.option_args()]

    def _mux(self) -> list[str]:
        assert self.control_path is not None
        return ["-o", "ControlMaster=no", "-o", f'ControlPath="{self.control_path}"']

    def master(self, forward: Forward | None = None) -> list[str]:
        """The long-lived process in own-master mode: authenticates once, holds the forward."""
        assert self.control_path is not None
        return dial.master_argv(
            self.target.ssh,
            self.target.option_args(),
            self.target.destination,
            str(self.control_path),
            forward.spec() if forward else None,
        )

    def tunnel(self, forward: Forward) -> list[str]:
        """The long-lived process in plain mode: `ssh -N -L ...`."""
        return [
            *self._base(),
            "-N",
            "-L",
            forward.spec(),
            "-o",
            "ExitOnForwardFailure=yes",
            *dial.KEEPALIVE,
            "--",
            self.target.destination,
        ]

    def add_forward(self, forward: Forward) -> list[str]:
        return [*self._mux_control("forward"), "-L", forward.spec(), "--", self.target.destination]

    def cancel_forward(self, forward: Forward) -> list[str]:
        return [*self._mux_control("cancel"), "-L", forward.spec(), "--", self.target.destination]

    def _mux_control(self, command: str) -> list[str]:
        base = self._base() + (
            ["-o", f'ControlPath="{self.control_path}"'] if self.control_path else []
        )
        return [*base, "-O", command]

    def remote(self, command: str) -> list[str]:
        """Run `command` on the server (through our master when we have one)."""
        mux = self._mux() if self.control_path else []
        return [*self._base(), *mux, "-T", "--", self.target.destination, command]


def effective_config(target: Target, timeout: float = 15) -> dict[str, str]:
    """What `ssh -G` says the options for this destination are (aliases, Match and -o applied)."""
    argv = [target.ssh, *target.option_args(), "-G", "--", target.destination]
    try:
        done = proc.run(argv, what=f"`ssh -G {target.destination}`", timeout=timeout)
    except LabshareError as exc:
        raise _unusable(target, exc) from exc
    config: dict[str, str] = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition(" ")
        config.setdefault(key.lower(), value)
    return config


def _unusable(target: Target, exc: LabshareError) -> LabshareError:
    """Why `ssh -G` failed, in words about ssh rather than about running a program."""
    if isinstance(exc.__cause__, FileNotFoundError):
        return LabshareError(
            f"The OpenSSH client `{target.ssh}` was not found; install OpenSSH "
            "(on Windows: Settings > Optional features > OpenSSH Client) and try again."
        )
    if isinstance(exc.__cause__, subprocess.TimeoutExpired):
        return LabshareError(
            f"`ssh -G {target.destination}` did not finish; check your ssh config."
        )
    last = exc.last_said or "(no message)"
    return LabshareError(
        f"ssh cannot use the destination {target.destination!r} ({last}); check the name and your ~/.ssh/config."
    )


def user_sets_control_master(config: dict[str, str]) -> bool:
    """True when the user's config multiplexes already: then their ControlMaster/ControlPath win."""
    master = config.get("controlmaster", "false")
    path = config.get("controlpath", "none")
    return master not in ("false", "no") or path not in ("none", "")


def control_dir(paths: Paths) -> Path:
    """A private 0700 directory for our control sockets, short enough for sun_path."""
    chosen = Path(dial.control_dir(str(paths.state_root), str(paths.tmp_root), paths.uid))
    if chosen.parent != paths.state_root:
        ensure_private_dir(chosen.parent)  # our own 0700 dir in the shared /tmp first
    return ensure_private_dir(chosen)


# What `ssh -G` calls the levels at which ssh keeps even its own failures to itself (QUIET is "SILENT").
SILENT_LOG_LEVELS = frozenset(
    {"quiet", "silent", "fatal"}
)  # ssh -G says SILENT for QUIET; older ones may not


def audible(target: Target, config: dict[str, str]) -> Target:
    """`target` with `LogLevel=ERROR` when the member's ssh config hides ssh's own failure lines.

    diagnose.py tells a failed login from an unreachable host by those lines
    ("Permission denied", "Could not resolve hostname"), which ERROR still
    shows while it hides the banners such a setting is there to hide.  A
    refused forward is known from the tunnel itself, at any level.
    """
    if config.get("loglevel", "").lower() not in SILENT_LOG_LEVELS:
        return target
    return replace(target, options=(*target.options, "LogLevel=ERROR"))


def plan(paths: Paths, target: Target, system: str = os.name) -> Plan:
    """Decide between our own master and plain ssh for this destination.

    `system` is `os.name` of the laptop, as data so that the Windows command
    lines (Win32-OpenSSH has no ControlMaster: plain ssh, a TCP port here)
    are checked on any system.
    """
    config = effective_config(target)
    target = audible(target, config)
    if system == "nt":
        return Plan(target)
    if user_sets_control_master(config):
        return Plan(
            target,
            notes=("your ssh config sets ControlMaster for this host; labshare uses it as is",),
        )
    directory = control_dir(paths)
    path = directory / f"c-{os.getpid()}"
    return Plan(target, control_path=path)


SHARED_PERSIST_SECONDS = 60


def shared_master_options(
    paths: Paths, target: Target, config: dict[str, str], system: str = os.name
) -> list[str]:
    """`-o` options that let short calls to one host (`labshare fleet`) share one ssh login.

    The first call becomes a master that stays `SHARED_PERSIST_SECONDS` after
    the last one, so asking a group again skips every handshake.  Its socket
    is in our private 0700 directory, named from a hash of the destination
    and options (ssh's own `%C` is too long for sun_path there).  None on
    Windows (no multiplexing) or when the member's ssh config multiplexes
    already: their ControlMaster is then used as it is.
    """
    if system == "nt" or user_sets_control_master(config):
        return []
    import hashlib

    name = hashlib.sha256("\0".join([target.destination, *target.options]).encode()).hexdigest()[
        :12
    ]
    path = control_dir(paths) / f"f-{name}"
    return [
        "-o",
        "ControlMaster=auto",
        "-o",
        f'ControlPath="{path}"',
        "-o",
        f"ControlPersist={SHARED_PERSIST_SECONDS}",
    ]


def remote_command(args: Sequence[str], labshare: str | None = None) -> str:
    """A POSIX sh command line that finds labshare on the server and runs it with `args`.

    Non-interactive ssh does not read ~/.profile, so `uv tool`/`pipx` installs in
    ~/.local/bin are usually not on PATH: try PATH, then ~/.local/bin, then a
    login shell.  The whole script is wrapped in `sh -c` so it also works when
    the member's login shell is fish or tcsh.
    """
    quoted = " ".join(shlex.quote(a) for a in args)
    missing = f"echo {shlex.quote(NOT_FOUND_MARK)} >&2; exit {NOT_FOUND_CODE}"
    if labshare:
        exe = (
            f'"$HOME"/{shlex.quote(labshare[2:])}'
            if labshare.startswith("~/")
            else shlex.quote(labshare)
        )
        script = f"if [ -x {exe} ]; then exec {exe} {quoted}; fi; {missing}"
    else:
        login = f"command -v labshare >/dev/null 2>&1 || {{ {missing}; }}; exec labshare {quoted}"
        script = (
            f"if command -v labshare >/dev/null 2>&1; then exec labshare {quoted}; fi; "
            f'if [ -x "$HOME/.local/bin/labshare" ]; then exec "$HOME/.local/bin/labshare" {quoted}; fi; '
            f'if [ -n "$SHELL" ] && [ -x "$SHELL" ]; then exec "$SHELL" -lc {shlex.quote(login)}; fi; '
            f"{missing}"
        )
    return f"sh -c {shlex.quote(script)}"


def manual_command(target: Target, forward: Forward, system: str = os.name) -> str:
    """The plain `ssh -N -L` line for people without labshare on the laptop, quoted for its shell."""
    argv = [target.ssh, "-N", "-L", forward.spec(), *target.option_args(), target.destination]
    if system == "nt":
        return subprocess.list2cmdline(argv)
    return shlex.join(argv)
