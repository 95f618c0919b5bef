"""The current kernel's cards in Lab's status bar: the answer `gpus/kernel_cards.py` makes, and its record.

Pure and quick, as any user.  The status bar itself, with a real member's
Lab, the stand-in NVML and a second member's server, is tested in
tests/test_gpu_notices.py, in the same browser session as the reclaim
warning it shows the countdown of.
"""

from __future__ import annotations

import json

import pytest

from labshare.gpus.kernel_cards import card_text, clock, kernel_cards, memory_of, short_name
from labshare.gpus.leases import Lease
from labshare.gpus.nvml import GpuDevice, GpuReading
from labshare.records import TooNew
from labshare.records.kernel_cards import KernelCard, KernelCards

pytestmark = pytest.mark.quick
MIB, GIB = 1 << 20, 1 << 30
A100 = "NVIDIA A100-SXM4-80GB"


def lease(card: str, kernel: str = "k1") -> Lease:
    return Lease(
        card=card, name=f"{card}.1", uid=1000, user="a", shared=False, kernel_id=kernel, pid=10
    )


def device(index: int, processes: dict[int, int | None], util: int | None = 35) -> GpuDevice:
    return GpuDevice(
        index=index,
        name=A100,
        utilization_percent=util,
        memory_used_bytes=40 * GIB,
        memory_total_bytes=80 * GIB,
        processes=processes,
        uuid=f"GPU-{index}",
    )


def test_a_leased_kernel_shows_its_cards_with_the_memory_its_processes_hold() -> None:
    reading = GpuReading(
        devices=[
            device(
                0, {10: 12000 * MIB, 11: 1 * GIB, 99: 30 * GIB}
            ),  # 99: another process on the card
            device(1, {}, util=None),
            device(2, {10: 5 * GIB}),  # not leased: a card the kernel has no lease on is not shown
        ]
    )
    answer = kernel_cards(
        "k1",
        leased=True,
        held=[lease("GPU-1"), lease("GPU-0")],
        reading=reading,
        pids={10, 11},
    )
    assert [c.index for c in answer.cards] == [0, 1]  # by index, whatever the order of the leases
    assert answer.cards[0].memory_used_bytes == 12000 * MIB + GIB
    assert answer.cards[1].memory_used_bytes == 0
    assert answer.text == (
        "GPU 0 A100-SXM4-80GB · 12.7 GiB / 80.0 GiB · 35% | GPU 1 A100-SXM4-80GB · 0 B / 80.0 GiB"
    )
    assert answer.countdown is None and answer.reclaim_in is None and answer.every == 3.0
    assert answer.title.splitlines()[0] == (
        f"GPU 0, {A100} (GPU-0): this kernel's processes hold 12.7 GiB of its 80.0 GiB; the card is 35% busy."
    )


def test_the_countdown_while_a_reclaim_warning_holds() -> None:
    answer = kernel_cards(
        "k1",
        leased=True,
        held=[lease("GPU-0")],
        reading=GpuReading([device(0, {10: GIB})]),
        pids={10},
        reclaim_in=395.2,
    )
    assert answer.countdown == "reclaim in 6:35" and answer.reclaim_in == 395.2
    assert "shuts it down (its notebook saved) in 6:35 unless it runs something" in answer.title
    assert [clock(s) for s in (0, -3, 59.6, 3600, 3725)] == [
        "0:00",
        "0:00",
        "1:00",
        "1:00:00",
        "1:02:05",
    ]


def test_a_kernel_without_a_lease_is_cpu_only_and_a_site_without_per_kernel_leases_stops_lab() -> (
    None
):
    cpu = kernel_cards("k2", leased=True, held=[], reading=GpuReading([device(0, {})]), pids={10})
    assert (cpu.text, cpu.cards, cpu.countdown, cpu.every) == ("CPU only", (), None, 3.0)
    assert "no GPU" in cpu.title and "[tool.labshare]" in cpu.title
    warned = kernel_cards("k2", leased=True, held=[], reading=GpuReading([]), pids=(), reclaim_in=5)
    assert warned.countdown is None  # nothing to reclaim from a kernel without a card
    off = kernel_cards("k3", leased=False, held=[], reading=GpuReading([]), pids=())
    assert (off.leased, off.every, off.text) == (False, None, "")


def test_cards_nvml_cannot_describe_still_show_as_leased() -> None:
    unknown = kernel_cards(
        "k1",
        leased=True,
        held=[lease("GPU-8f2c1a07-1111-2222")],
        reading=GpuReading(devices=[], unavailable="no GPU: the NVIDIA driver does not answer"),
        pids={10},
    )
    assert unknown.text == "GPU-8f2c1a07…"
    assert unknown.gpu_unavailable == "no GPU: the NVIDIA driver does not answer"
    assert "No figures from the cards now: no GPU" in unknown.title
    silent = device(0, {10: None, 11: 2 * GIB})  # a driver that does not say (some vGPU/MIG setups)
    assert memory_of(silent, {10, 11}) is None and memory_of(silent, {11}) == 2 * GIB
    assert card_text(
        KernelCard(
            uuid="GPU-0", index=0, name=A100, memory_used_bytes=None, memory_total_bytes=80 * GIB
        )
    ) == ("GPU 0 A100-SXM4-80GB · n/a / 80.0 GiB")
    assert (
        short_name("NVIDIA GeForce RTX 4090") == "GeForce RTX 4090"
        and short_name("NVIDIA") == "NVIDIA"
    )


def test_the_answer_is_a_versioned_record_that_round_trips() -> None:
    answer = kernel_cards(
        "k1",
        leased=True,
        held=[lease("GPU-0")],
        reading=GpuReading([device(0, {10: GIB})]),
        pids={10},
        reclaim_in=60,
    )
    data = json.loads(json.dumps(answer.to_json()))
    assert data["version"] == KernelCards.VERSION and data["cards"][0]["index"] == 0
    assert KernelCards.from_json(data, "a test") == answer
    with pytest.raises(TooNew, match="upgrade labshare here"):
        KernelCards.from_json({**data, "version": KernelCards.VERSION + 1}, "a test")
