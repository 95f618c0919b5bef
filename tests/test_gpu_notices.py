"""The reclaim warning reaches the member's open Lab as a notification, and goes away when it no longer holds;
Lab's status bar shows the current kernel's card, what it holds there, and the countdown while warned.

A real member's server (TCP), a notebook opened in headless Chromium, whose
kernel Lab starts and labshare leases; the stand-in NVML then reports the
kernel's process as holding memory at 0 %.  The site config makes the
warning come 5 s into the idle time and the reclaim 395 s after that, so
the test sees the warning shown, then withdrawn once the stand-in reports
the card used, with minutes to spare on a loaded machine.  The notices
plugin asks every 30 s (a tenth of the warning time, at most 30 s); the
status bar asks every 3 s and has the notification shown or withdrawn as
soon as it sees the countdown start or stop, so neither waits that long.
A second notebook, of a project that asks for no card, shows "CPU only";
a second member's server answers 404 for the first member's kernel, and
the first member's for theirs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import lab_outputs as lo
import pytest
from conftest import Accounts, Member, wait_for
from fake_gpus import FakeNvml, GpuProc, fake_nvml, leases_dir, nvml_stub
from jupyter_api import Lab
from test_gpu_kernels import kernel_pid, leased_site, project_kernel, serve

from labshare.gpus import leases
from labshare.records.kernel_cards import KernelCards

pytestmark = [pytest.mark.slow, pytest.mark.browser]
TOAST = ".Toastify__toast"
GPU_STATUS = "#labshare-gpu-status"


def gpus(lab: Lab, kernel: str) -> KernelCards:
    """The status bar's answer for `kernel`, read as a typed record."""
    answer = lab.ok("GET", f"/api/labshare/kernels/{kernel}/gpus")
    return KernelCards.from_json(answer, "the kernel's GPU answer")


def test_lab_shows_the_kernels_card_and_the_reclaim_warning_and_takes_it_back_when_the_card_is_used(
    member: Member,
    make_user: Accounts,
    fake_nvml: FakeNvml,
    leases_dir: Path,
    shared_tmp: Path,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    site = leased_site(
        shared_tmp, leases_dir, 'idle_reclaim_after = "400s"\nreclaim_warning = "395s"\n'
    )
    member.extra_env.update({"LABSHARE_SITE_CONFIG": str(site), **fake_nvml.env})
    server = lo.start_server(member)
    assert server.api.call("GET", "/api/labshare/gpu-notices", token=False).status == 403
    lo.write_notebook(server.root, "idle.ipynb", ["x = 1"])
    cpu = lo.write_notebook(server.root, "cpu.ipynb", ["y = 2"])
    notebook = json.loads(cpu.read_text())
    notebook["metadata"]["kernelspec"].update(
        name=project_kernel(member, "cpu", 0), display_name="cpu"
    )
    cpu.write_text(json.dumps(notebook))
    with lo.chromium(tmp_path / "shots") as browser:
        page = lo.open_notebook(browser, server, "idle.ipynb")
        kernel = server.api.ok("GET", "/api/sessions")[0]["kernel"]["id"]
        card = next(lease.card for lease in leases.leases(leases_dir) if lease.kernel_id == kernel)
        index = [c.uuid for c in fake_nvml.cards].index(card)
        fake_nvml.procs = [GpuProc(gpu=index, pid=kernel_pid(member, kernel), used_mib=12000, sm=0)]
        fake_nvml.write()

        status = page.locator(GPU_STATUS)
        expect(status).to_contain_text(
            f"GPU {index} A100-SXM4-80GB · 11.7 GiB / 80.0 GiB · 0%", timeout=60_000
        )
        expect(status).to_contain_text(re.compile(r"reclaim in [0-6]:\d\d$"), timeout=60_000)
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
        answer = gpus(server.api, kernel)
        assert [(c.uuid, c.index, c.memory_used_bytes) for c in answer.cards] == [
            (card, index, 12000 << 20)
        ] and 0 < (answer.reclaim_in or 0) <= 395, answer

        fake_nvml.procs = [  # the kernel computes: more memory, the card busy
            GpuProc(gpu=index, pid=kernel_pid(member, kernel), used_mib=20000, sm=40)
        ]
        fake_nvml.cards[index].util = 35
        fake_nvml.write()
        wait_for(
            lambda: not server.api.ok("GET", "/api/labshare/gpu-notices")["notices"],
            timeout=60,
            what="the warning to be withdrawn once the card is used",
        )
        toast.first.wait_for(state="detached", timeout=60_000)
        expect(status).to_have_text(
            f"GPU {index} A100-SXM4-80GB · 19.5 GiB / 80.0 GiB · 35%", timeout=30_000
        )

        page.locator(".jp-DirListing-item", has_text="cpu.ipynb").dblclick()
        expect(status).to_have_text("CPU only", timeout=60_000)
        page.locator(".lm-TabBar-tab", has_text="idle.ipynb").click()
        expect(status).to_contain_text(f"GPU {index} A100-SXM4-80GB", timeout=30_000)
    assert server.api.ok("GET", f"/api/kernels/{kernel}")["execution_state"] == "idle"

    other = make_user()
    theirs = serve(other, site, fake_nvml)
    their_kernel = theirs.start_kernel()
    assert theirs.call("GET", f"/api/labshare/kernels/{kernel}/gpus").status == 404
    assert server.api.call("GET", f"/api/labshare/kernels/{their_kernel}/gpus").status == 404
    assert server.api.call("GET", f"/api/labshare/kernels/{kernel}/gpus", token=False).status == 403
    assert (
        [c.uuid for c in gpus(theirs, their_kernel).cards]
        == [lease.card for lease in leases.leases(leases_dir) if lease.kernel_id == their_kernel]
        != [card]
    )


def test_without_reclaim_or_leases_per_kernel_lab_is_told_to_stop_asking(member: Member) -> None:
    server = lo.start_server(member)
    assert server.api.ok("GET", "/api/labshare/gpu-notices") == {"notices": [], "every": None}
    answer = gpus(server.api, server.api.start_kernel())
    assert (answer.leased, answer.every, answer.text) == (False, None, "")
