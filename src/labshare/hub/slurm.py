"""Members' servers as Slurm jobs: what hub-config checks, what the hub is told, and the lines a member reads.

The hub (batchspawner's SlurmSpawner, through `slurm_spawner`) submits a
job that runs `batchspawner-singleuser labshare singleuser` on a node:
batchspawner's wrapper picks the port and tells the hub, then runs the
node's labshare, which becomes JupyterHub's single-user server with
labshare's parts inside.  So the node's labshare path, and
`batchspawner-singleuser` beside it, must exist on every node; hub-config
checks them on this host unless `[hub.slurm] labshare_only_on_nodes` says
they are not here, and checks the partition with `sinfo` where it can.

The job is submitted as the member with `runuser` (util-linux, on every
Debian-like host), not batchspawner's default `sudo -E`: the hub runs as
root, needs no sudoers rule, and the environment (the hub's token among
it) passes by name to `sbatch --export`, never on a command line.

The text functions are pure, so the lines a member sees are tested
without a cluster; `check` is the one impure part (the filesystem, sinfo).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from labshare.config import SlurmSettings
from labshare.errors import LabshareError

SPAWNER_CLASS = "labshare.hub.slurm_spawner.LabshareSlurmSpawner"
WRAPPER = "batchspawner-singleuser"
EXEC_PREFIX = "/usr/sbin/runuser -u {username} --"
# batchspawner's query, with the reason a job waits: "PENDING n/a Resources", "RUNNING node1 None".
QUERY = "squeue -h -j {job_id} -o '%T %B %r'"
EXECHOST_RE = r"^\S+\s+((?:[\w_-]+\.?)+)"

# Slurm's reasons for a pending job (squeue %r), in the member's words.
WHY_PENDING = {
    "Resources": "the cards, CPUs or memory it asks for are in use",
    "Priority": "jobs ahead of it come first",
    "Dependency": "it waits for another job",
    "PartitionDown": "its partition is down",
    "PartitionInactive": "its partition is not taking jobs",
    "PartitionNodeLimit": "it asks for more nodes than its partition allows",
    "PartitionTimeLimit": "it asks for more time than its partition allows",
    "ReqNodeNotAvail": "the nodes it needs are down, drained or reserved",
    "NodeDown": "a node it needs is down",
    "BeginTime": "its start time has not come",
    "JobHeldAdmin": "an admin holds it",
    "JobHeldUser": "it is held",
    "AssocGrpGRES": "the account's GPU limit is reached",
    "QOSMaxGRESPerUser": "your GPU limit is reached",
}


def wrapper_beside(labshare: str) -> str:
    """batchspawner's wrapper from the same installation as the node's labshare."""
    return os.path.join(os.path.dirname(labshare), WRAPPER)


def spawner_settings(labshare: str) -> dict[str, str]:
    """The SlurmSpawner traits labshare sets besides the req_* values, for jupyterhub_config.py."""
    return {
        "batchspawner_singleuser_cmd": wrapper_beside(labshare),
        "exec_prefix": EXEC_PREFIX,
        "batch_query_cmd": QUERY,
        "state_exechost_re": EXECHOST_RE,
    }


# --- the lines a member reads on the hub's spawn page -------------------------------------------


def pending_line(job_id: str, status: str) -> str:
    """One line for a job that waits in the queue, from squeue's `%T %B %r`."""
    words = status.split(None, 2)
    reason = words[2].strip() if len(words) > 2 else ""
    short = reason.split(",")[0].strip()
    why = WHY_PENDING.get(short)
    if why:
        return f"Waiting in Slurm's queue: job {job_id} is pending because {why} ({reason})."
    if reason and reason != "None":
        return f"Waiting in Slurm's queue: job {job_id} is pending ({reason})."
    return f"Waiting in Slurm's queue: job {job_id} is pending."


def running_line(job_id: str, host: str | None) -> str:
    where = f" on {host}" if host else ""
    return f"Slurm job {job_id} is running{where}; waiting for the member's server to answer."


def refused_line(stderr: str) -> str:
    """sbatch's refusal as one line: Slurm's own reason, and what to change."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    said = next((ln for ln in reversed(lines) if "error" in ln.lower()), lines[-1] if lines else "")
    said = re.sub(r"^sbatch:\s*error:\s*", "", said)
    said = re.sub(r"^Batch job submission failed:\s*", "", said)
    said = said.rstrip(".") or "sbatch gave no reason"
    return (
        f"Slurm refused the server's job: {said}; ask the admin to change what [hub.slurm] or your "
        "[users.NAME] limits ask for (partition, gres, memory, CPUs, time)."
    )


@dataclass(frozen=True)
class EndedJob:
    """What `scontrol show job` says of a job that is no longer pending or running."""

    job_id: str
    state: str = ""
    reason: str = ""
    exit_code: str = ""
    output: str = ""

    @classmethod
    def parse(cls, job_id: str, text: str) -> EndedJob:
        fields = dict(re.findall(r"\b(JobState|Reason|ExitCode|StdOut)=(\S*)", text))
        return cls(
            job_id=job_id,
            state=fields.get("JobState", ""),
            reason=fields.get("Reason", ""),
            exit_code=fields.get("ExitCode", ""),
            output=fields.get("StdOut", ""),
        )

    def line(self) -> str:
        """One line for a job that ended before its server answered."""
        if self.state == "CANCELLED":
            return f"Slurm job {self.job_id} was cancelled before the server started."
        if not self.state:
            return (
                f"Slurm job {self.job_id} is gone before the server started, and Slurm no longer "
                "says why; ask the admin to look at the job's output file."
            )
        how = self.state
        if self.exit_code and self.exit_code != "0:0":
            how += f", exit code {self.exit_code}"
        if self.reason and self.reason != "None":
            how += f", {self.reason}"
        where = f"; its output is in {self.output}" if self.output else ""
        return f"Slurm job {self.job_id} ended before the server started ({how}){where}."


# --- what hub-config checks --------------------------------------------------------------------

Runner = Callable[[list[str]], subprocess.CompletedProcess[str]]


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False
    )


def check(
    labshare: str,
    slurm: SlurmSettings,
    which: Callable[[str], str | None] = shutil.which,
    run: Runner = _run,
) -> list[str]:
    """Refuse, in one sentence, a Slurm config that cannot start a server; the notes say what was not checked."""
    notes = _check_command(labshare, slurm.labshare_only_on_nodes)
    if slurm.partition:
        notes += _check_partition(slurm.partition, which, run)
    return notes


def _check_command(labshare: str, only_on_nodes: bool) -> list[str]:
    if not os.path.isabs(labshare):
        raise LabshareError(
            f"The Slurm jobs would start members' servers with {labshare!r}, which is not an absolute "
            "path; set [hub] labshare to the path of labshare on the nodes, then run again."
        )
    wrapper = wrapper_beside(labshare)
    if only_on_nodes:
        return [
            f"{labshare} and {wrapper} were not checked ([hub.slurm] labshare_only_on_nodes): every "
            "compute node must have them, or members' jobs end at once."
        ]
    for path, what in ((labshare, "labshare"), (wrapper, f"{WRAPPER} (from batchspawner)")):
        if not os.access(path, os.X_OK) or os.path.isdir(path):
            raise LabshareError(
                f"The Slurm jobs would run {path}, but there is no {what} there on this host; install "
                "labshare[slurm] at that path on the shared filesystem (or set [hub] labshare to where it "
                "is), or set [hub.slurm] labshare_only_on_nodes = true if it is on the nodes only, then "
                "run again."
            )
    return []


def _check_partition(partition: str, which: Callable[[str], str | None], run: Runner) -> list[str]:
    sinfo = which("sinfo")
    if sinfo is None:
        return [f"sinfo is not installed on this host, so partition {partition!r} was not checked."]
    try:
        done = run([sinfo, "-h", "-o", "%R"])
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [f"sinfo did not answer ({exc}), so partition {partition!r} was not checked."]
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        return [
            f"sinfo failed ({said[-1] if said else f'exit code {done.returncode}'}), so partition "
            f"{partition!r} was not checked."
        ]
    known = sorted({line.strip() for line in done.stdout.splitlines() if line.strip()})
    if partition not in known:
        listed = ", ".join(known) if known else "none"
        raise LabshareError(
            f"Slurm has no partition {partition!r} (sinfo lists: {listed}); set [hub.slurm] partition "
            "to one of them, then run again."
        )
    return []
