"""`labshare run --gpus N -- CMD`: a command outside Jupyter, under a lease, as a kernel would be.

A `python train.py` in tmux otherwise takes any card and nobody knows whose
it is.  Here it gets its cards by the same placement as a kernel, is told
them by UUID, and the lease names the command's own pid: if labshare itself
is killed the command keeps its cards while it runs, and the lease goes
stale the moment it ends.  The command is started behind a gate (`_start`)
and runs only once its pid holds the lease, so it never computes under a
lease that names labshare.  labshare waits, passes on the signals meant
for the command, gives the lease back and exits with the command's status.
Where the site leases nothing, the command runs at once with the cards the
member's kernels see.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType

from labshare import config, proc
from labshare.errors import LabshareError
from labshare.gpus import assign, leases
from labshare.gpus.assign import GpuPolicy
from labshare.gpus.nvml import GpuReader, read_nvml
from labshare.paths import Paths
from labshare.users import user_name

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
FROM_TERMINAL = (
    signal.SIGINT,
    signal.SIGQUIT,
)  # Ctrl-C, Ctrl-\: the terminal signals the command itself
# Waits for "go" on the inherited pipe, then becomes the command; if labshare dies first, it never runs.
GATE = 'read -r go <&{fd} && [ "$go" = go ] && exec "$@" {fd}<&-; exit 125'


def my_policy(paths: Paths) -> GpuPolicy:
    """The GPU policy of whoever runs this, from the site config as `labshare start` reads it."""
    site, policy = config.effective(
        paths.site_config, paths.user_config_file, user_name(os.getuid())
    )
    return GpuPolicy.of(site.gpus, policy.limits)


def run(
    policy: GpuPolicy, count: int | None, argv: Sequence[str], reader: GpuReader = read_nvml
) -> int:
    """Run `argv` under a lease of `count` cards (None: the site's `per_kernel`); its exit status.

    Where the site does not lease, the command runs with the member's cards
    as their kernels see them; what `labshare run` adds there is the notice
    when it ends.

    A signal that comes while the cards are being leased means the command
    is not started at all; one that comes later is the command's.
    """
    if not argv:
        raise LabshareError(
            "Name the command to run after `--`, e.g. `labshare run --gpus 1 -- python train.py`."
        )
    with _signals() as signals:
        held, env = _cards(policy, count, argv, reader)
        try:
            if signals.pending:
                return 128 + signals.pending[0]
            child, gate = _start(argv, env)
            try:
                signals.attach(child)
                if held:
                    _hand_over(policy, held, child)
                with contextlib.suppress(
                    BrokenPipeError
                ):  # a signal passed on has ended it at the gate
                    os.write(gate, b"go\n")
            finally:
                os.close(gate)
            status = child.wait()
        finally:
            if held:
                leases.give_back(Path(policy.leases_dir), held)
    return 128 - status if status < 0 else status


def _cards(
    policy: GpuPolicy, count: int | None, argv: Sequence[str], reader: GpuReader
) -> tuple[list[leases.Lease], dict[str, str]]:
    """The leases taken for the command and the environment that tells it its cards.

    Where the site does not lease, nothing is taken: the command sees the
    cards the member's kernels see (or none with `--gpus 0`), and still gets
    its signals, its exit status and its notice.
    """
    if policy.leased:
        wanted = policy.per_kernel if count is None else count
        return assign.take(policy, wanted, leases.Holder(label=Path(argv[0]).name), reader)
    if count:
        raise LabshareError(
            'GPUs are not leased on this host ([gpus] assign is "off" in the site config), so '
            "`--gpus` cannot be honoured; leave it out to run with the cards the site gives you, "
            "or use `--gpus 0` for none."
        )
    return [], assign.visible([]) if count == 0 else assign.server_env(policy, reader)


def _hand_over(
    policy: GpuPolicy, held: Sequence[leases.Lease], child: subprocess.Popen[str]
) -> None:
    """Make the command's pid the holder; a card lost meanwhile ends the command, never leaves it unleased."""
    try:
        leases.hand_over(Path(policy.leases_dir), held, child.pid)
    except LabshareError:
        child.kill()
        child.wait()
        raise


def _start(argv: Sequence[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], int]:
    """The command, started as a shell that waits at its gate; and the pipe end that opens it.

    The shell `exec`s the command, which keeps its pid and start time, the
    two things a lease names; so the lease handed to the shell is the
    command's from its first instruction.
    """
    full = {**os.environ, **env}
    _check_runnable(argv[0], full.get("PATH", os.defpath))
    gate_in, gate = os.pipe()
    try:
        child = proc.start(
            ["/bin/sh", "-c", GATE.format(fd=gate_in), "labshare-run", *argv],
            env=full,
            stdin=None,
            stdout=None,
            stderr=None,
            pass_fds=(gate_in,),
            what=f"labshare run {argv[0]}",
        )
    except BaseException:
        os.close(gate)
        raise
    finally:
        os.close(gate_in)
    return child, gate


def _check_runnable(program: str, path: str) -> None:
    """What exec would fail on, said now in labshare's words rather than later by the gate's shell."""
    if shutil.which(program, path=path):
        return
    if os.sep in program and os.path.exists(program):
        raise LabshareError(f"labshare run {program} failed: {program} is not executable.")
    raise LabshareError(f"labshare run {program} failed: {program} was not found.")


class _Signals:
    """While labshare runs a command, signals to labshare are the command's: passed on, or kept until it starts.

    Ctrl-C and Ctrl-\\ in a terminal reach the command directly (it is in
    labshare's foreground process group), so those are not passed on twice.
    """

    def __init__(self) -> None:
        self.child: subprocess.Popen[str] | None = None
        self.pending: list[int] = []
        self.terminal = _foreground()

    def forward(self, signum: int, _frame: FrameType | None) -> None:
        if self.child is None:
            self.pending.append(signum)
        elif not (self.terminal and signum in FROM_TERMINAL):
            self._send(signum)

    def attach(self, child: subprocess.Popen[str]) -> None:
        """From now on signals go to `child`, starting with those that came while it was being started."""
        self.child = child
        while self.pending:
            self._send(self.pending.pop(0))

    def _send(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            if self.child is not None:
                self.child.send_signal(signum)


@contextlib.contextmanager
def _signals() -> Iterator[_Signals]:
    signals = _Signals()
    before = {signum: signal.signal(signum, signals.forward) for signum in FORWARDED}
    try:
        yield signals
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def _foreground() -> bool:
    """Whether labshare runs in the foreground of a terminal, whose Ctrl-C reaches the command directly."""
    try:
        fd = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY)
    except OSError:
        return False
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(fd)
