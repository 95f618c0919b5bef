"""batchspawner's SlurmSpawner, saying in one line on the hub's spawn page why a member's server is not up.

batchspawner's own messages are "Pending in queue...", "Unknown
status..." and, for a job that ended, "The Jupyter batch job has
disappeared ... or died immediately after starting".  A member cannot act
on those; this subclass says the job's id and Slurm's reason (waiting for
cards, refused by sbatch, cancelled, failed with an exit code and where its
output is).  It changes nothing else: submission, polling and stopping are
batchspawner's.  The hub imports it from the jupyterhub_config.py
`hub-config` writes, so labshare[slurm] is installed where the hub runs.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlparse, urlunparse

from batchspawner import SlurmSpawner
from batchspawner.batchspawner import format_template  # type: ignore[import-untyped]
from traitlets import Unicode

from labshare.hub import slurm


class LabshareSlurmSpawner(SlurmSpawner):
    """SlurmSpawner with one clear line for a job that waits, is refused, is cancelled or fails."""

    listen_ip = Unicode(
        "",
        help="Where the member's server listens on its node; empty: batchspawner's 0.0.0.0, every "
        "address of the node, so the hub's proxy on another host can reach it.",
    ).tag(config=True)

    _last_job: str = ""

    def get_env(self) -> dict[str, str]:
        env: dict[str, str] = super().get_env()
        url = env.get("JUPYTERHUB_SERVICE_URL")
        if self.listen_ip and url:
            parts = urlparse(url)
            env["JUPYTERHUB_SERVICE_URL"] = urlunparse(
                parts._replace(netloc=f"{self.listen_ip}:{parts.port or 0}")
            )
        return env

    async def submit_batch_script(self) -> str:
        try:
            job_id: str = await super().submit_batch_script()
        except RuntimeError as exc:  # sbatch's refusal, as batchspawner passes its stderr
            raise RuntimeError(slurm.refused_line(str(exc))) from None
        self._last_job = job_id
        return job_id

    async def start(self) -> Any:
        """batchspawner's start, watched: a job that ends before its server reports a port fails the
        spawn at once with Slurm's reason, where batchspawner would wait for the port until the timeout."""
        self._last_job = ""
        started = asyncio.ensure_future(super().start())
        try:
            while True:
                done, _ = await asyncio.wait(
                    {started}, timeout=max(1.0, self.startup_poll_interval)
                )
                if done:
                    return started.result()
                if self._last_job and not await self._listed(self._last_job):
                    started.cancel()
                    why = await self._ended(self._last_job)
                    self.clear_state()  # nothing left to cancel
                    raise RuntimeError(why)
        except RuntimeError as exc:
            if "disappeared" not in str(exc) or not self._last_job:
                raise
            raise RuntimeError(await self._ended(self._last_job)) from None
        finally:
            if not started.done():
                started.cancel()

    async def _as_member(self, command: str) -> str:
        """A Slurm command run as batchspawner runs its own (its exec_prefix): its output, or where it
        fails its error (batchspawner matches "cannot reach the controller" there too)."""
        prefix = format_template(self.exec_prefix, **self.get_req_subvars())
        try:
            out: str = await self.run_command(f"{prefix} {command}")
        except RuntimeError as exc:
            return str(exc)
        return out

    async def _listed(self, job_id: str) -> bool:
        """Whether Slurm lists the job as pending or running (or cannot say), without touching job_status."""
        subvars = {**self.get_req_subvars(), "job_id": job_id}
        out = await self._as_member(format_template(self.batch_query_cmd, **subvars))
        if self.state_unknown_re and re.search(self.state_unknown_re, out):
            return True
        return bool(re.search(self.state_pending_re, out) or re.search(self.state_running_re, out))

    async def _ended(self, job_id: str) -> str:
        """Why a job is gone, from `scontrol show job` (Slurm keeps an ended job for MinJobAge)."""
        text = await self._as_member(f"scontrol -o show job {job_id}")
        return slurm.EndedJob.parse(job_id, text).line()

    async def progress(self) -> AsyncIterator[dict[str, str]]:
        while True:
            job = self.job_id or self._last_job
            if self.state_ispending():
                yield {"message": slurm.pending_line(job, self.job_status)}
            elif self.state_isrunning():
                found = re.search(self.state_exechost_re, self.job_status or "")
                yield {"message": slurm.running_line(job, found.group(1) if found else None)}
                return
            elif job:
                yield {"message": f"Slurm job {job} is submitted; waiting for Slurm to list it."}
            else:
                yield {"message": "Submitting the server's job to Slurm."}
            await asyncio.sleep(1)
