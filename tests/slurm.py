"""A real one-node Slurm cluster on 127.0.0.1 for the tests: munged, slurmctld and slurmd from Debian's slurm-wlm.

Booted once per session (per xdist worker: mark the tests that use it
`pytest.mark.xdist_group("slurm")` so they share one), in a temp dir of its
own: a test munge key and socket, free ports, state and spool dirs, and
nothing of the host's own Slurm or munge configuration.  The node is this
host under its own name with two GPUs of gres: `gres.conf` lists two device
files the fixture makes (character devices like /dev/null where mknod is
allowed, else plain files, which slurmd accepts with a logged complaint),
with `AutoDetect=off`, so Slurm counts and hands out cards that are not
there.  Jobs get `SLURM_JOB_GPUS`/`CUDA_VISIBLE_DEVICES` = 0 and 1, the
first two cards of the stand-in NVML.  No cgroups: proctrack/linuxproc and
task/none, as in a container.  Every command a test runs needs `env`
(`SLURM_CONF`), since nothing is in /etc/slurm.

Test modules import the fixture by name (`from slurm import slurm`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from conftest import free_port, kill_all, wait_for

DAEMONS = ("/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd")
PARTITION = "lab"
GPUS = 2


@dataclass
class Slurm:
    """The booted cluster: where its files are, its one node and partition, and how to reach it."""

    root: Path
    node: str
    partition: str = PARTITION
    daemons: list[subprocess.Popen] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """What Slurm's commands need to find this cluster (and its munge socket, through slurm.conf)."""
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *argv: str, check: bool = True, timeout: float = 60) -> str:
        """A Slurm command (`squeue ...`) as root against this cluster; its stdout."""
        done = subprocess.run(
            list(argv),
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{argv} failed ({done.returncode}): {done.stderr}")
        return done.stdout

    def jobs(self) -> dict[str, str]:
        """Job id -> state of every job Slurm still lists, finished ones too."""
        out = self.run("squeue", "-h", "-t", "all", "-o", "%i %T")
        return dict(line.split() for line in out.splitlines() if line.strip())

    def job_state(self, job_id: str) -> str:
        """A job's state as scontrol says it (COMPLETED, CANCELLED... stay listed a while)."""
        out = self.run("scontrol", "-o", "show", "job", job_id)
        found = re.search(r"\bJobState=(\S+)", out)
        return found.group(1) if found else ""

    def node_state(self) -> str:
        return self.run("sinfo", "-h", "-n", self.node, "-o", "%T", check=False).strip()

    def cancel_all(self) -> None:
        """Cancel every job and wait until none is left running, so no test leaves a job behind."""
        self.run("scancel", "--full", *self.jobs(), check=False)
        wait_for(
            lambda: (
                not any(
                    s in ("RUNNING", "PENDING", "COMPLETING", "CONFIGURING")
                    for s in self.jobs().values()
                )
            ),
            timeout=60,
            what="every Slurm job to end",
        )


def _hardware() -> str:
    """This host's CPU layout as slurmd sees it, so the node is never drained for a mismatch."""
    done = subprocess.run(["/usr/sbin/slurmd", "-C"], capture_output=True, text=True, timeout=60)
    words = dict(w.split("=", 1) for w in done.stdout.split() if "=" in w)
    keep = ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore")
    layout = " ".join(f"{k}={words[k]}" for k in keep if k in words)
    # Less memory than the host has is fine (slurmd drains a node that has less than it says).
    memory = max(256, int(int(words.get("RealMemory", "1024")) * 0.8))
    return f"{layout} RealMemory={memory}"


def _device(path: Path) -> None:
    """A stand-in GPU device file: a character device like /dev/null, or a plain file without CAP_MKNOD."""
    try:
        os.mknod(path, 0o666 | 0o020000, os.makedev(1, 3))
    except PermissionError:
        path.touch()


def write_config(root: Path, node: str) -> None:
    """slurm.conf and gres.conf for one node with two stand-in GPUs, all files under `root`."""
    for sub in ("state", "spool", "log", "dev"):
        (root / sub).mkdir(mode=0o755)
    devices = [root / "dev" / f"nvidia{i}" for i in range(GPUS)]
    for path in devices:
        _device(path)
    ctld, slurmd = free_port(), free_port()
    (root / "slurm.conf").write_text(f"""\
ClusterName=labsharetest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld}
SlurmdPort={slurmd}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/run/munge.socket
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
MinJobAge=120
KillWait=5
SchedulerType=sched/builtin
NodeName={node} NodeAddr=127.0.0.1 {_hardware()} Gres=gpu:{GPUS} State=UNKNOWN
PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP
""")
    (root / "gres.conf").write_text(
        "AutoDetect=off\n" + "".join(f"Name=gpu File={path}\n" for path in devices)
    )


def _start(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)


def _munge_answers(root: Path) -> bool:
    socket_path = str(root / "run/munge.socket")
    cred = subprocess.run(["munge", "-n", "-S", socket_path], capture_output=True, timeout=30)
    if cred.returncode != 0:
        return False
    back = subprocess.run(["unmunge", "-S", socket_path], input=cred.stdout, capture_output=True)
    return back.returncode == 0


def boot(root: Path) -> Slurm:
    """Start munged, slurmctld and slurmd under `root`, and wait until the node is idle."""
    node = socket.gethostname().split(".")[0]
    (root / "munge").mkdir(mode=0o700)
    (root / "run").mkdir(mode=0o755)  # munged insists that everyone may reach its socket
    key = root / "munge/munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    write_config(root, node)
    cluster = Slurm(root=root, node=node)
    env = {**os.environ, **cluster.env}
    log = root / "log"
    try:
        cluster.daemons.append(
            _start(
                [
                    "/usr/sbin/munged",
                    "--foreground",
                    f"--key-file={key}",
                    f"--socket={root}/run/munge.socket",
                    f"--pid-file={root}/run/munged.pid",
                    f"--log-file={log}/munged.log",
                    f"--seed-file={root}/munge/seed",
                ],
                log / "munged.out",
                env,
            )
        )
        wait_for(lambda: _munge_answers(root), timeout=60, what="munged answering")
        cluster.daemons.append(
            _start(["/usr/sbin/slurmctld", "-D", "-i"], log / "slurmctld.out", env)
        )
        cluster.daemons.append(
            _start(["/usr/sbin/slurmd", "-D", "-N", node], log / "slurmd.out", env)
        )
        wait_for(
            lambda: "UP" in cluster.run("scontrol", "ping", check=False),
            timeout=60,
            what="slurmctld answering `scontrol ping`",
        )
        wait_for(
            lambda: cluster.node_state() == "idle", timeout=60, what=f"node {node} idle in sinfo"
        )
    except BaseException:
        print(_logs(root))
        stop(cluster)
        raise
    return cluster


def _logs(root: Path) -> str:
    found = []
    for path in sorted((root / "log").glob("*")):
        with contextlib.suppress(OSError):
            found.append(f"== {path.name}\n{path.read_text()[-3000:]}")
    return "\n".join(found)


def _steps(cluster: Slurm) -> list[psutil.Process]:
    """slurmstepd processes of this cluster: they leave slurmd's family, but keep its SLURM_CONF."""
    found = []
    for proc in psutil.process_iter(["name"]):
        with contextlib.suppress(psutil.Error):
            if proc.info["name"] == "slurmstepd" and proc.environ().get("SLURM_CONF") == str(
                cluster.conf
            ):
                found.append(proc)
    return found


def stop(cluster: Slurm) -> None:
    """Cancel the jobs, then stop the daemons (newest first) and any step left over, by pid."""
    alive = [d for d in cluster.daemons if d.poll() is None]
    if len(alive) == len(DAEMONS):
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            cluster.cancel_all()
    steps = _steps(cluster)
    for daemon in reversed(cluster.daemons):
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(timeout=30)
    kill_all(steps)


@pytest.fixture(scope="session")
def slurm() -> Iterator[Slurm]:
    """One Slurm cluster for the session's tests that need it; absent slurm-wlm fails in CI, skips elsewhere."""
    absent = [path for path in DAEMONS if not os.access(path, os.X_OK)]
    if absent or os.geteuid() != 0:
        why = f"{', '.join(absent)} not installed" if absent else "slurmd needs root"
        if os.environ.get("CI"):
            pytest.fail(f"Slurm tests need slurm-wlm and munge as root in CI ({why})")
        pytest.skip(f"Slurm tests need slurm-wlm and munge, run as root ({why})")
    root = Path(tempfile.mkdtemp(prefix="labshare-slurm-"))
    root.chmod(0o755)  # members' jobs read slurm.conf and reach the munge socket
    cluster = boot(root)
    try:
        yield cluster
    finally:
        stop(cluster)
        shutil.rmtree(root, ignore_errors=True)
