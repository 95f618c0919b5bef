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
        try:
            return await super().start()
        except RuntimeError as exc:
            if "disappeared" not in str(exc) or not self._last_job:
                raise
            raise RuntimeError(await self._ended(self._last_job)) from None

    async def _ended(self, job_id: str) -> str:
        """Why a job is gone, from `scontrol show job` (Slurm keeps an ended job for MinJobAge)."""
        subvars = self.get_req_subvars()
        command = f"{format_template(self.exec_prefix, **subvars)} scontrol -o show job {job_id}"
        try:
            text = await self.run_command(command)
        except RuntimeError:
            text = ""
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
