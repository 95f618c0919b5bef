"""Headless Chromium for tests: Debian's /usr/bin/chromium driven by Playwright's Python package.

A test tool's own browser download is impossible here, so Playwright is
pointed at the system Chromium, with the flags that keep it off the network.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("LABSHARE_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@contextmanager
def chromium(shots: Path) -> Iterator[object]:
    """A fresh browser; on failure a screenshot of every open page lands in `shots`."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; scripts/test installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield browser
        except BaseException:
            shots.mkdir(parents=True, exist_ok=True)
            for n, context in enumerate(browser.contexts):
                for m, page in enumerate(context.pages):
                    try:
                        page.screenshot(path=str(shots / f"failure-{n}-{m}.png"))
                    except Exception:
                        pass
            raise
        finally:
            browser.close()


def run_cell(page, code: str, timeout_ms: int = 120_000) -> str:
    """Type `code` into the last cell of the open notebook, run it, return its output text.

    Shift+Enter leaves a fresh empty cell at the end, ready for the next call.
    """
    cells = page.locator(".jp-Notebook .jp-Cell")
    cell = cells.nth(cells.count() - 1)  # pinned: Shift+Enter appends a new last cell
    editor = cell.locator(".cm-content")
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(code)
    page.keyboard.press("Shift+Enter")
    output = cell.locator(".jp-OutputArea-output")
    output.first.wait_for(timeout=timeout_ms)
    return output.first.inner_text()
