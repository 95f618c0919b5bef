"""The detached supervisor: keeps one member's Jupyter alive, and nothing else.

Started by `labshare start` in a new session (setsid) with stdin from
/dev/null, so logging out or a dropped SSH connection cannot reach it.  It
restarts a crashed Jupyter with backoff (the first restart at once), counts
restarts in the state file, and ends cleanly when Jupyter exits with 0
(idle shutdown or `/api/shutdown`).  Its first act is a 077 umask, so
nothing it or Jupyter creates is readable by another account.  It imports
only the standard library and labshare's small state and process modules,
to stay small in memory.

Jupyter writes straight into the log file (O_APPEND), so logging survives
even the supervisor's own death; rotation is copy-then-truncate.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from labshare import proc
from labshare.files import remove
from labshare.paths import Paths
from labshare.records.server import LaunchSpec
from labshare.server import state as st

LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 2
QUICK_FAILURE_SECONDS = 30.0
MAX_QUICK_FAILURES = 5
STOP_GRACE_SECONDS = (
    10.0  # from SIGTERM to SIGKILL, for Jupyter here and for the whole tree in `stop`
)


def backoff(streak: int) -> float:
    """Seconds to wait before restart number `streak` of a run of quick failures."""
    return 0.1 if streak <= 1 else min(0.5 * 2 ** (streak - 2), 30.0)


def rotate(log: Path) -> None:
    try:
        if log.stat().st_size < LOG_MAX_BYTES:
            return
    except FileNotFoundError:
        return
    for n in range(LOG_BACKUPS, 1, -1):
        older = log.with_name(f"{log.name}.{n - 1}")
        if older.exists():
            os.replace(older, log.with_name(f"{log.name}.{n}"))
    shutil.copyfile(log, log.with_name(f"{log.name}.1"))
    os.truncate(log, 0)


class Supervisor:
    AGAIN = "run `labshare start`"  # what a member does once it gave up

    def __init__(self, paths: Paths, spec: LaunchSpec):
        self.paths = paths
        self.argv = list(spec.argv)
        self.cwd = spec.cwd
        self.runtime_dir = Path(spec.runtime_dir)
        self.socket = Path(spec.socket) if spec.socket else None
        self.log_path = Path(spec.log_file)
        self.stopping = False

    def say(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.log_path, "a") as log:
            log.write(f"[labshare {stamp}] {message}\n")

    def on_signal(self, signum: int, _frame: object) -> None:
        self.stopping = True

    def update(self, **changes: object) -> None:
        with st.locked(self.paths):
            record = st.load(self.paths)
            if record is None or record.supervisor_pid != os.getpid():
                return
            st.save(self.paths, dataclasses.replace(record, **changes))  # type: ignore[arg-type]

    def spawn(self) -> subprocess.Popen[str]:
        env = dict(os.environ)
        env["JUPYTER_TOKEN"] = self.paths.token_file.read_text().strip()
        env["JUPYTER_RUNTIME_DIR"] = str(self.runtime_dir)
        env.pop("JUPYTER_TOKEN_FILE", None)
        log = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            return proc.start(
                self.argv, cwd=self.cwd, env=env, stdout=log, stderr=log, what="starting JupyterLab"
            )
        finally:
            os.close(log)

    def wait(self, child: subprocess.Popen[str]) -> int:
        """Wait for Jupyter to exit, rotating the log and passing a stop request on."""
        term_sent = 0.0
        while True:
            try:
                return child.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
            if self.stopping and not term_sent:
                child.terminate()
                term_sent = time.monotonic()
            elif term_sent and time.monotonic() - term_sent > STOP_GRACE_SECONDS:
                child.kill()
            rotate(self.log_path)

    def tell(self, what: str) -> None:
        """A notice of the server's crash, written by a process of its own (the supervisor stays small);
        with no `what`, only wake a sender for notices a reboot left unsent."""
        if what:
            argv = [sys.executable, "-m", "labshare.notify.emit", "server", what, "your JupyterLab"]
        elif any(self.paths.state_dir.glob("notices/pending/*.json")):
            argv = [sys.executable, "-m", "labshare.notify.sender"]
        else:
            return
        try:
            subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            self.say(f"no notice ({exc})")

    def forget(self, pid: int) -> None:
        """Drop the leftovers of a Jupyter process that did not exit cleanly."""
        for leftover in self.runtime_dir.glob(f"jpserver-{pid}*"):
            remove(leftover)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        streak = 0
        restarts = 0
        code = 0
        self.tell("")
        while True:
            child = self.spawn()
            began = time.monotonic()
            self.update(pid=child.pid, pid_started=st.process_started(child.pid), restarts=restarts)
            code = self.wait(child)
            if code != 0:
                self.forget(child.pid)
            if self.stopping:
                self.say(f"stopped on request (Jupyter exit code {code})")
                code = 0
                break
            if code == 0:
                self.say("Jupyter exited cleanly (idle shutdown or /api/shutdown); supervisor ends")
                break
            streak = 1 if time.monotonic() - began > QUICK_FAILURE_SECONDS else streak + 1
            if streak > MAX_QUICK_FAILURES:
                reason = f"Jupyter failed {streak} times in a row, last with exit code {code}"
                self.say(f"giving up: {reason}; see the lines above")
                self.update(failed=reason, pid=None, pid_started=None)
                self.tell(f"crashed and gave up: {reason}; {self.AGAIN}")
                return 1
            restarts += 1
            self.say(f"Jupyter (pid {child.pid}) died with exit code {code}; restart {restarts}")
            self.tell(f"crashed (exit code {code}) and came back: restart {restarts}")
            deadline = time.monotonic() + backoff(streak)
            while time.monotonic() < deadline and not self.stopping:
                time.sleep(0.05)
            if self.stopping:
                break
        self.cleanup()
        return code

    def cleanup(self) -> None:
        with st.locked(self.paths):
            record = st.load(self.paths)
            if record is not None and record.supervisor_pid == os.getpid():
                st.clear(self.paths)
                if self.socket is not None:
                    remove(self.socket)


class HubSupervisor(Supervisor):
    """The same loop for a server JupyterHub spawned (`labshare singleuser`, `--hub`).

    The spawner watches this process, so a crash of Jupyter is restarted here
    on the same address without the hub noticing, and the kernels, which
    live in the spawner's unit or job beside it, are re-adopted; were Jupyter
    the spawner's process, systemd or Slurm would end the kernels with it.
    The hub gives Jupyter its login token in the environment; the log is
    the spawner's own output, and the record is `hub_server.json`.
    """

    AGAIN = "start it again from the hub's control panel"

    def say(self, message: str) -> None:
        print(
            f"[labshare {time.strftime('%Y-%m-%d %H:%M:%S')}] {message}",
            file=sys.stderr,
            flush=True,
        )

    def spawn(self) -> subprocess.Popen[str]:
        env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(self.runtime_dir)}
        return proc.start(  # Jupyter's log is the spawner's: the journal, the job's output file
            self.argv, cwd=self.cwd, env=env, stdout=None, stderr=None, what="starting JupyterLab"
        )

    def update(self, **changes: object) -> None:
        store = st.hub_store(self.paths)
        record = store.read()
        if record is None or record.pid != os.getpid():
            return
        keys = {"pid": "jupyter_pid", "pid_started": "jupyter_started", "restarts": "restarts"}
        known = {keys[k]: v for k, v in changes.items() if k in keys}
        store.write(dataclasses.replace(record, **known))  # type: ignore[arg-type]

    def cleanup(self) -> None:
        record = st.hub_store(self.paths).read()
        if record is not None and record.pid == os.getpid():
            remove(self.paths.hub_server_file)


def main(argv: list[str]) -> int:
    os.umask(0o077)
    paths = Paths.from_env()
    hub = "--hub" in argv[1:]
    spec = (st.hub_launch_store(paths) if hub else st.launch_store(paths)).read()
    if spec is None:
        raise SystemExit(
            f"labshare supervisor: {paths.hub_launch_file if hub else paths.launch_file} is "
            f"missing; {HubSupervisor.AGAIN if hub else Supervisor.AGAIN}."
        )
    return (HubSupervisor if hub else Supervisor)(paths, spec).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
