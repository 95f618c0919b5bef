"""Which cards a Slurm job may lease (`gpus/job_cards.py`), from the job's environment as Slurm sets it.

The environments are the ones slurmd gives a batch script and an `srun`
step (seen on Slurm 22.05 with gres `gpu`), with and without
`ConstrainDevices`; the reader is a plain function listing cards.
"""

from __future__ import annotations

import pytest

from labshare.gpus.job_cards import job_cards
from labshare.gpus.nvml import GpuDevice, GpuReader, no_gpu

pytestmark = pytest.mark.quick  # pure: scripts/test runs it first, as an ordinary user


def uuid(i: int) -> str:
    return f"GPU-{i:08x}-1111-2222-3333-{0xABCDEF000000 + i:012x}"


def cards(*indexes: int) -> GpuReader:
    found = [GpuDevice(index=i, name="A100", uuid=uuid(i)) for i in indexes]
    return lambda: found


FOUR = cards(0, 1, 2, 3)
JOB = {"SLURM_JOB_ID": "17"}


def test_outside_a_job_or_where_slurm_hands_out_no_gpus_slurm_says_nothing() -> None:
    assert job_cards({"CUDA_VISIBLE_DEVICES": "0"}, FOUR) is None  # not a Slurm job
    assert job_cards({"SLURM_JOB_GPUS": "0"}, FOUR) is None
    assert job_cards(JOB, FOUR) is None  # a job on a node without GPU gres


def test_the_global_ids_name_nvml_indices_when_the_job_sees_every_card() -> None:
    batch = {**JOB, "SLURM_JOB_GPUS": "2,3", "CUDA_VISIBLE_DEVICES": "2,3"}
    assert job_cards(batch, FOUR) == (2, 3)
    step = {**batch, "SLURM_STEP_GPUS": "3", "CUDA_VISIBLE_DEVICES": "3"}
    assert job_cards(step, FOUR) == (3,)  # an srun step with one of the job's cards


def test_constrained_devices_renumber_nvml_so_the_local_ids_are_used() -> None:
    # ConstrainDevices: the job's cards 2 and 3 are all NVML shows, as 0 and 1.
    env = {**JOB, "SLURM_JOB_GPUS": "2,3", "CUDA_VISIBLE_DEVICES": "0,1"}
    assert job_cards(env, cards(0, 1)) == (0, 1)
    # A global id NVML does not list and nothing else to go by: no card at all.
    assert job_cards({**JOB, "SLURM_JOB_GPUS": "5"}, FOUR) == ()


def test_uuids_in_cuda_visible_devices_are_resolved_and_unknown_ones_stop_the_list() -> None:
    env = {**JOB, "CUDA_VISIBLE_DEVICES": f"{uuid(3)},{uuid(1)[:12]}"}
    assert job_cards(env, FOUR) == (1, 3)
    cut = {**JOB, "CUDA_VISIBLE_DEVICES": f"{uuid(2)},GPU-unknown,{uuid(0)}"}
    assert job_cards(cut, FOUR) == (2,)  # CUDA stops at the first entry it cannot use


@pytest.mark.parametrize("value", ["", "NoDevFiles", "-1"])
def test_a_job_given_no_card_leases_none(value: str) -> None:
    assert job_cards({**JOB, "CUDA_VISIBLE_DEVICES": value}, FOUR) == ()
    assert job_cards({**JOB, "SLURM_JOB_GPUS": value}, FOUR) == ()


def test_without_nvml_the_ids_slurm_gave_are_returned_as_they_are() -> None:
    env = {**JOB, "SLURM_JOB_GPUS": "1,0", "CUDA_VISIBLE_DEVICES": "0,1"}
    assert job_cards(env, no_gpu("no driver")) == (0, 1)
    assert job_cards({**JOB, "CUDA_VISIBLE_DEVICES": uuid(0)}, no_gpu()) == ()
