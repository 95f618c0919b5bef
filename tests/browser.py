"""Headless Chromium for tests: Debian's /usr/bin/chromium driven by Playwright's Python package.

A test tool's own browser download is impossible here, so Playwright is
pointed at the system Chromium, with the flags that keep it off the network.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import kill_all

# The status bar's "Python 3 (ipykernel) | Idle": unlike the toolbar's execution indicator, which says idle
# before any kernel exists (a run then opens Lab's "Select Kernel" dialog), it names a state only once a
# kernel is connected.
KERNEL_STATUS = '.jp-StatusBar-Widget [title^="Change kernel for"]'
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


def _tagged_tree(tag: str) -> list[psutil.Process]:
    """The Chromium launched with `tag` among its switches, and everything below it."""
    for proc in psutil.process_iter(["cmdline"]):
        if tag in (proc.info["cmdline"] or []):
            try:
                return [proc, *proc.children(recursive=True)]
            except psutil.Error:
                return [proc]
    return []


@contextmanager
def chromium(shots: Path, tag: str = "browser") -> Iterator[Any]:
    """A fresh headless Chromium; a screenshot of each page lands in `shots` on failure.

    Tests run several browsers at once in threads, so this browser's processes
    are found by a switch of its own, never by being new children of the test.
    """
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; scripts/test installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing")
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    marker = f"--labshare-test-browser={uuid.uuid4().hex}"
    started: list[psutil.Process] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, args=[*ARGS, marker], headless=True
            )
            started = _tagged_tree(marker)
            try:
                yield browser
            except BaseException:
                shots.mkdir(parents=True, exist_ok=True)
                for n, context in enumerate(browser.contexts):
                    for m, page in enumerate(context.pages):
                        with contextlib.suppress(PlaywrightError):
                            page.screenshot(path=str(shots / f"{tag}-failure-{n}-{m}.png"))
                raise
            finally:
                started = list({p.pid: p for p in started + _tagged_tree(marker)}.values())
                browser.close()
    finally:
        kill_all(started)


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


def wait_for_kernel(page: Any, timeout_ms: int = 120_000) -> None:
    """Until the open notebook's kernel is connected, idle or busy."""
    page.locator(KERNEL_STATUS).filter(has_text=re.compile(r"\| (Idle|Busy)$")).first.wait_for(
        timeout=timeout_ms
    )


def dialog_text(page: Any) -> str:
    """The text of a dialog Lab shows over the page ('' when none), so a test says why its clicks are blocked."""
    dialog = page.locator(".jp-Dialog")
    return dialog.first.inner_text() if dialog.count() else ""
