"""The reclaim warning reaches the member's open Lab as a notification, and goes away when it no longer holds.

A real member's server (TCP), a notebook opened in headless Chromium, whose
kernel Lab starts and labshare leases; the stand-in NVML then reports the
kernel's process as holding memory at 0 %.  The site config makes the
warning come 5 s into the idle time and the reclaim 395 s after that (Lab
asks every 30 s, the longest interval: a tenth of the warning time, at
most 30 s), so the test sees the warning shown, then withdrawn once the
stand-in reports the card used, with minutes to spare on a loaded machine.
"""

from __future__ import annotations

from pathlib import Path

import lab_outputs as lo
import pytest
from conftest import Member, wait_for
from fake_gpus import FakeNvml, GpuProc, fake_nvml, leases_dir, nvml_stub
from test_gpu_kernels import kernel_pid, leased_site

from labshare.gpus import leases

pytestmark = [pytest.mark.slow, pytest.mark.browser]
TOAST = ".Toastify__toast"


def test_lab_shows_the_reclaim_warning_and_takes_it_back_when_the_card_is_used(
    member: Member, fake_nvml: FakeNvml, leases_dir: Path, shared_tmp: Path, tmp_path: Path
) -> None:
    site = leased_site(
        shared_tmp, leases_dir, 'idle_reclaim_after = "400s"\nreclaim_warning = "395s"\n'
    )
    member.extra_env.update({"LABSHARE_SITE_CONFIG": str(site), **fake_nvml.env})
    server = lo.start_server(member)
    assert server.api.call("GET", "/api/labshare/gpu-notices", token=False).status == 403
    lo.write_notebook(server.root, "idle.ipynb", ["x = 1"])
    with lo.chromium(tmp_path / "shots") as browser:
        page = lo.open_notebook(browser, server, "idle.ipynb")
        kernel = server.api.ok("GET", "/api/sessions")[0]["kernel"]["id"]
        card = next(lease.card for lease in leases.leases(leases_dir) if lease.kernel_id == kernel)
        index = [c.uuid for c in fake_nvml.cards].index(card)
        fake_nvml.procs = [GpuProc(gpu=index, pid=kernel_pid(member, kernel), used_mib=12000, sm=0)]
        fake_nvml.write()

        toast = page.locator(TOAST).filter(
            has_text="labshare will shut down the kernel of idle.ipynb"
        )
        toast.first.wait_for(timeout=90_000)
        text = toast.first.inner_text()
        assert (
            f"to free GPU {index}" in text
            and "holding 11.7 GiB" in text
            and "run a cell to keep it" in text
        ), text
        notices = server.api.ok("GET", "/api/labshare/gpu-notices")
        assert [n["kernel_id"] for n in notices["notices"]] == [kernel] and notices[
            "every"
        ] == 30, notices

        fake_nvml.procs = [
            GpuProc(gpu=index, pid=kernel_pid(member, kernel), used_mib=12000, sm=40)
        ]
        fake_nvml.write()
        wait_for(
            lambda: not server.api.ok("GET", "/api/labshare/gpu-notices")["notices"],
            timeout=60,
            what="the warning to be withdrawn once the card is used",
        )
        toast.first.wait_for(state="detached", timeout=60_000)
    assert server.api.ok("GET", f"/api/kernels/{kernel}")["execution_state"] == "idle"


def test_without_reclaim_lab_is_told_to_stop_asking(member: Member) -> None:
    server = lo.start_server(member)
    assert server.api.ok("GET", "/api/labshare/gpu-notices") == {"notices": [], "every": None}
