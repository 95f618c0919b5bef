"""End to end as a member sees it: `labshare connect`, then a real Chromium on the `ready` URL.

Debian's /usr/bin/chromium, driven by Playwright (a test tool's own browser
download is impossible here); a screenshot lands in the test's temp dir on failure.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sshd as sshd_helper
from browser import chromium, wait_for_kernel
from test_connect import Connect

pytestmark = [pytest.mark.sshd, pytest.mark.browser]


def test_chromium_opens_lab_and_runs_a_notebook(lab: sshd_helper.Lab, tmp_path: Path) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    lab.server.run("start", check=True)
    connect = Connect(lab.laptop, "gpu1")
    try:
        ready = connect.wait_for("ready")
        with chromium(tmp_path) as browser:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(ready["url"], timeout=120_000)
            page.wait_for_selector(".jp-Launcher", timeout=120_000)
            page.locator('.jp-LauncherCard[data-category="Notebook"]').first.click()
            cell = page.locator(".jp-Notebook .jp-Cell .cm-content").first
            cell.wait_for(timeout=120_000)
            wait_for_kernel(page)
            cell.click()
            page.keyboard.type("1+1")
            output = page.locator(".jp-OutputArea-output").first
            # A run sent before the kernel's websocket is up is dropped by JupyterLab: run again.
            for _ in range(8):
                cell.click()
                page.keyboard.press("Control+Enter")
                try:
                    output.wait_for(timeout=15_000)
                    break
                except PlaywrightTimeout:
                    continue
            assert output.inner_text(timeout=15_000).strip() == "2"
    finally:
        connect.kill()
