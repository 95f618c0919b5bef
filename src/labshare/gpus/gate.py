"""The kernelspec's gate: a kernel started by any Jupyter client takes its GPU lease before it exists.

Lab is not the only thing that starts labshare's kernels: VS Code, papermill,
nbclient, `jupyter execute` and `jupyter console` start them from the same
kernelspecs with their own jupyter_client, where labshare's provisioner never
runs.  So a kernelspec's argv (`Gated.argv`) is labshare's own Python running
this module, then the real kernel command.  Where kernels lease GPUs, the
gate reads the site policy as `labshare run` does, leases the kernel's cards
in its own name, tells them by UUID and `exec`s the kernel, which keeps the
gate's pid and start time, the two things a lease names: the lease is the
kernel's from its first instruction and stale the moment it ends.  A watcher
left outside the kernel's session then gives it back, however the kernel
ended, so `labshare gpus` no longer shows it.  No card free: the sentence Lab
shows, on stderr, and nothing is started.  Leases off: the member's fixed
cards, as the Lab server's kernels get them, and the kernel at once.

The Lab server's provisioner leases its kernels itself and starts the real
command (`unwrap`), so a kernel never holds two leases; a Lab of an earlier
labshare, still running after an upgrade, leases too but runs the gate, which
then passes its kernel through (`leased_by_lab`).  The top of this
module imports only the standard library: `envs.kernels` and `monitor.argv`
read argv with it.
"""

from __future__ import annotations

import os
import select
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from labshare.gpus.assign import GpuPolicy

MODULE = "labshare.gpus.gate"  # not __name__, which is "__main__" when the gate runs
PYTHON_FLAGS = (
    "-I",
)  # isolated: the kernel's PYTHONPATH and the notebook's folder never shadow labshare
WATCH_POLL = 1.0  # seconds between looks at the kernel, only where Linux has no pidfd (before 5.3)


@dataclass(frozen=True)
class Gated:
    """A kernel command behind the gate, and the project whose `[tool.labshare] gpus` it asks for."""

    command: list[str]
    project: Path | None = None

    def argv(self, python: str = sys.executable) -> list[str]:
        """The kernelspec argv: `python` (labshare's own) running the gate, then the kernel command."""
        project = ["--project", str(self.project)] if self.project else []
        return [python, *PYTHON_FLAGS, "-m", MODULE, *project, "--", *self.command]

    @classmethod
    def parse(cls, args: Sequence[str]) -> Gated | None:
        """The gate's own arguments (those after the module); None when they are not a gate's."""
        rest = list(args)
        project = None
        if rest[:1] == ["--project"] and len(rest) > 1:
            project, rest = Path(rest[1]), rest[2:]
        if rest[:1] != ["--"] or len(rest) < 2:
            return None
        return cls(command=rest[1:], project=project)

    @classmethod
    def of(cls, argv: Sequence[str]) -> Gated | None:
        """A whole argv (a kernelspec's, or a process's) read as the gate's; None for any other."""
        head = [*PYTHON_FLAGS, "-m", MODULE]
        if list(argv[1 : 1 + len(head)]) != head:
            return None
        return cls.parse(argv[1 + len(head) :])


def unwrap(argv: Sequence[str]) -> list[str]:
    """The real kernel command of a gated argv; any other argv as it is."""
    gated = Gated.of(argv)
    return list(argv) if gated is None else gated.command


def leased_by_lab(parent: int) -> bool:
    """Whether a labshare Lab started this kernel: one still running an earlier labshare, whose
    provisioner leased the cards already and runs the spec's argv as it is (today's strips the gate).
    """
    try:
        words = Path(f"/proc/{parent}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(w.startswith(b"--ServerApp.kernel_manager_class=labshare.") for w in words)


def client_of(pid: int) -> str | None:
    """The program that started a kernel, as its user calls it (papermill, code, jupyter-execute)."""
    import psutil

    try:
        parent = psutil.Process(pid)
        name, words = parent.name(), parent.cmdline()
    except psutil.Error:
        return None
    if (
        words and "vscode" in words[0].lower()
    ):  # VS Code's server is a `node` under ~/.vscode-server
        return "code"
    if name.startswith("python") and len(words) > 1:
        if words[1] == "-m" and len(words) > 2:
            return words[2]
        if not words[1].startswith("-"):
            return os.path.basename(words[1])
    return name


def cards(gated: Gated, policy: GpuPolicy) -> dict[str, str]:
    """The environment that tells the kernel its cards, leased in this process's name where kernels lease."""
    from labshare.gpus import assign

    if not policy.leased:
        return assign.server_env(policy)
    from labshare.config.project import project_gpus
    from labshare.gpus import leases

    count = project_gpus(gated.project) if gated.project else None
    wanted = policy.per_kernel if count is None else count
    if wanted == 0:
        return assign.visible([])
    watch(os.getpid(), Path(policy.leases_dir))
    holder = leases.Holder(
        client=client_of(os.getppid()) or "unknown",
        label=gated.project.name if gated.project else None,
    )
    _, env = assign.take(policy, wanted, holder)
    return env


def watch(pid: int, leases_dir: Path) -> None:
    """Leave a watcher that gives back `pid`'s leases once it has ended; returns at once.

    Started before the lease is taken, so no lease is ever without one; if it
    is killed itself, the lease is stale all the same and the member's next
    lease sweeps it.
    """
    from labshare.proc import leave_watcher

    def give_back(pidfd: int | None) -> None:
        wait_for_end(pid, pidfd)
        from labshare.gpus import leases

        leases.sweep(leases_dir)

    try:
        leave_watcher(pid, give_back)
    except OSError as exc:
        from labshare.errors import LabshareError

        why = f"labshare could not start the process that gives its GPU lease back ({exc.strerror})"
        raise LabshareError(
            f"The kernel was not started: {why}; try again, or check `ulimit -u`."
        ) from None


def wait_for_end(pid: int, pidfd: int | None) -> None:
    """Return once `pid` has ended (a zombie counts): at once through its pidfd, else by looking now and then."""
    if pidfd is not None:
        select.select([pidfd], [], [])
        return
    import psutil

    from labshare.proc import gone

    try:
        process = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    while not gone(process):
        time.sleep(WATCH_POLL)


def main(args: Sequence[str]) -> NoReturn:
    """Run the kernel in `args` under the GPU rules; a refusal is one line on stderr and a non-zero exit."""
    from labshare.errors import ExitCode, LabshareError

    gated = Gated.parse(args)
    if gated is None:
        _fail(
            "labshare's GPU gate runs a kernel: `python -m labshare.gpus.gate [--project DIR] -- KERNEL...`; "
            "labshare writes it into the kernelspecs it makes.",
            ExitCode.USAGE,
        )
    try:
        from labshare.gpus.run import my_policy
        from labshare.paths import Paths

        env = {} if leased_by_lab(os.getppid()) else cards(gated, my_policy(Paths.from_env()))
        if not leased_by_lab(os.getppid()):  # the Lab's own kernels are watched inside the Lab
            from labshare.notify import kernel_watch

            kernel_watch.leave(gated.command, os.getppid(), client_of(os.getppid()))
    except LabshareError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(ExitCode.INTERRUPTED)
    try:
        os.execvpe(gated.command[0], gated.command, {**os.environ, **env})
    except OSError as exc:
        _fail(
            f"The kernel's command {gated.command[0]} cannot be run ({exc.strerror}); `labshare env list` "
            "shows whether its environment is gone.",
            ExitCode.FAILED,
        )


def _fail(sentence: str, code: int) -> NoReturn:
    sys.stderr.write(f"labshare: error: {sentence}\n")
    sys.exit(code)


if __name__ == "__main__":
    main(sys.argv[1:])
