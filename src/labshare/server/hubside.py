"""The member's server as JupyterHub spawns it: `labshare start`'s Jupyter options, under the hub's login.

JupyterHub authenticates, proxies and spawns; what it spawns for a member
is `labshare singleuser`, which runs JupyterHub's own single-user server
(`jupyterhub.singleuser`, so the hub's login and proxy work unchanged) with
the options `labshare start` gives its Lab: the kernelspec manager, the
kernel manager and provisioner with the member's GPU policy, reclaim, the
outputs keeper.  One code path, two ways in (DESIGN.md, "Inside JupyterHub").

The server keeps the member's own state folder, so kernels it starts
survive it and the next one re-adopts them, and a `labshare start` server
that runs when the hub takes over is stopped with its kernels kept: the
hub's server adopts them (same ids, same leases).  Under Slurm the job's
cards are the only cards its kernels may lease.  This module decides; the
process then becomes labshare's supervisor (`supervise.HubSupervisor`),
which runs Jupyter (`jupyterside/singleuser.py`) below it and restarts it
in place after a crash.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

from labshare import config, proc
from labshare.envs import default as default_kernel
from labshare.envs import refresh as refresh_kernels
from labshare.envs.kerneltools import KernelTools
from labshare.errors import LabshareError
from labshare.files import write_atomic
from labshare.gpus import job_cards
from labshare.gpus.assign import GpuPolicy
from labshare.gpus.nvml import GpuReader, read_nvml
from labshare.install_hint import reinstall_hint
from labshare.jupyterside import singleuser as singleuser_app
from labshare.paths import Paths
from labshare.records.server import HubServer, LaunchSpec
from labshare.server import launch, lifecycle, outputs, records, status, supervise, versions
from labshare.server import state as st
from labshare.server.supervise import STOP_GRACE_SECONDS

HUB_ENV = "JUPYTERHUB_SERVICE_URL"  # set by every JupyterHub spawner, needed by its single-user app


@dataclass(frozen=True)
class Spawn:
    """Jupyter's command line and environment for the supervisor, and what to tell the hub's log."""

    argv: list[str]
    env: dict[str, str]
    notes: list[str] = field(default_factory=list)


def job_policy(gpus: GpuPolicy, environ: Mapping[str, str], reader: GpuReader) -> GpuPolicy:
    """Inside a Slurm job the job's cards are the member's cards: a member's own `gpus` list names
    one host's cards, and Slurm already chose among the node's (hub-config says so)."""
    job = job_cards.job_cards(environ, reader)
    return gpus if job is None else dataclasses.replace(gpus, gpus=job)


def end_orphan(paths: Paths, previous: HubServer) -> bool:
    """A Jupyter whose hub supervisor died still serves the member's kernels: end it, keeping them."""
    if previous.jupyter_pid is None or not st.alive(previous.jupyter_pid, previous.jupyter_started):
        return False
    import psutil

    write_atomic(paths.keep_kernels_marker, "")
    try:
        proc.end([psutil.Process(previous.jupyter_pid)], STOP_GRACE_SECONDS)
    except psutil.Error:
        return False
    return True


def _jupyterhub_installed() -> None:
    if importlib.util.find_spec("jupyterhub") is None:
        raise LabshareError(
            "JupyterHub's single-user server is not installed beside labshare, so the hub cannot "
            f"start labshare's server here; {reinstall_hint('hub')}."
        )


def plan(
    paths: Paths, environ: Mapping[str, str], extra: list[str], reader: GpuReader = read_nvml
) -> Spawn:
    """Prepare the member's folders and kernels as `start` does, and say how to become the hub's server."""
    if not environ.get(HUB_ENV):
        raise LabshareError(
            "`labshare singleuser` is the command JupyterHub runs for a member's server (it needs "
            f"${HUB_ENV}); to start your own server, run `labshare start`."
        )
    _jupyterhub_installed()
    lifecycle.prepare(paths)
    user = environ.get("JUPYTERHUB_USER") or environ.get("USER") or ""
    site, policy = config.effective(paths.site_config, paths.user_config_file, user)
    notes: list[str] = []
    previous = st.hub_store(paths).read()
    if previous is not None and previous.pid != os.getpid():
        if st.alive(previous.pid, previous.started):
            raise LabshareError(
                f"{status.under_hub(previous)}; stop it from the hub's control panel before it "
                "starts another."
            )
        if end_orphan(paths, previous):
            notes.append(
                f"Ended the Jupyter (pid {previous.jupyter_pid}) the previous server's supervisor "
                "left behind, with its kernels kept for this server to adopt."
            )
    moved = lifecycle.stop(paths, keep_kernels=True)
    if moved.stopped:
        notes.append(
            f"Stopped the member's `labshare start` server (pid {moved.pid}) and kept its "
            f"{moved.kept_kernels} kernel(s) for this server to adopt."
        )
    root = lifecycle.resolve_root(
        paths, None, environ.get("JUPYTERHUB_ROOT_DIR") or policy.root_dir
    )
    gpus = job_policy(GpuPolicy.of(site.gpus, policy.limits), environ, reader)
    keep = policy.keep_outputs
    notes += versions.check(keep)
    notes += refresh_kernels.on_start()
    notes += default_kernel.ensure(paths.data_home)
    argv = [
        sys.executable,
        "-m",
        singleuser_app.__name__,
        f"--ServerApp.root_dir={root}",
        *launch.policy_args(policy, gpus),
        *launch.member_args(),
        *records.jupyter_args(paths),
        *outputs.jupyter_args(keep, paths.state_dir),
        *extra,
    ]
    if hasattr(os, "getuid") and os.getuid() == 0:
        argv.append("--ServerApp.allow_root=True")
    env = {k: v for k, v in environ.items() if k != "JUPYTERHUB_ROOT_DIR"}
    env.update(launch.policy_env(gpus))
    env.update(launch.tools_env(environ, KernelTools.of(paths.data_home).bin_dir))
    env["JUPYTER_RUNTIME_DIR"] = str(paths.runtime_dir)
    return Spawn(argv=argv, env=env, notes=notes)


def become(paths: Paths, spawn: Spawn, environ: Mapping[str, str]) -> None:
    """Hand Jupyter's command line to labshare's supervisor and become it.

    The spawner's process is then the supervisor, which restarts a crashed
    Jupyter on the same address while the kernels live on beside it (see
    `supervise.HubSupervisor`); the hub sees a server that never went away.
    """
    st.hub_launch_store(paths).write(
        LaunchSpec(
            argv=tuple(spawn.argv),
            cwd=os.getcwd(),
            log_file="",
            runtime_dir=str(paths.runtime_dir),
            socket=None,
        )
    )
    pid = os.getpid()
    st.hub_store(paths).write(
        HubServer(
            pid=pid,
            started=st.process_started(pid),
            host=socket.gethostname(),
            url=environ.get("JUPYTERHUB_PUBLIC_URL") or environ.get(HUB_ENV, ""),
            service_url=environ.get(HUB_ENV, ""),
            job_id=environ.get("SLURM_JOB_ID"),
        )
    )
    supervisor = [sys.executable, "-m", supervise.__name__, "--hub"]
    os.execve(supervisor[0], supervisor, spawn.env)
