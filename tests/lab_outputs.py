"""Helpers for the output-keeping tests: a labshare server in TCP mode, notebooks on disk, headless Chromium.

A browser cannot reach Jupyter over a Unix socket, so these servers run
with `--tcp` (127.0.0.1, token still required).  Chromium is Debian's,
driven by Playwright's Python package; every process it starts is found by
pid and killed when the browser is closed.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import Member
from jupyter_api import Lab

from labshare import probe

CHROMIUM = os.environ.get("LABSHARE_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run", "--disable-quic",
]
CELLS = ".jp-Notebook .jp-Cell"


@dataclass
class Server:
    member: Member
    port: int
    token: str
    root: Path
    pid: int

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}?token={self.token}"

    @property
    def api(self) -> Lab:
        return Lab(probe.Address(host="127.0.0.1", port=self.port), self.token)


def start_server(member: Member, *args: str) -> Server:
    member.run("start", "--tcp", *args, check=True)
    info = member.json("info")
    assert info["running"] and info["port"], info
    return Server(member, info["port"], info["token"], Path(info["root_dir"]), info["pid"])


def write_notebook(root: Path, name: str, sources: list[str]) -> Path:
    """A notebook with code cells and the python3 kernel set, so Lab opens it without asking."""
    cells = [
        {"cell_type": "code", "id": uuid.uuid4().hex[:8], "metadata": {}, "source": src,
         "outputs": [], "execution_count": None}
        for src in sources
    ]
    nb = {
        "cells": cells, "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}},
    }
    path = root / name
    path.write_text(json.dumps(nb, indent=1))
    return path


def disk_cell(path: Path, index: int) -> tuple[str, int | None]:
    """The stream text and execution count of cell `index` as saved on disk."""
    cell = json.loads(path.read_text())["cells"][index]
    text = "".join(
        "".join(out["text"]) if isinstance(out.get("text"), list) else out.get("text", "")
        for out in cell["outputs"] if out.get("output_type") == "stream"
    )
    return text, cell.get("execution_count")


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


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
def chromium(shots: Path, tag: str) -> Iterator[Any]:
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
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=[*ARGS, marker], headless=True)
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
        for proc in started:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(started, timeout=10)


def open_notebook(browser: Any, server: Server, name: str, connected: bool = True) -> Any:
    """A page with `name` open in Lab and (if `connected`) its kernel idle, or busy with a cell run earlier."""
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(server.url(f"/lab/tree/{name}"))
    page.locator(CELLS).first.wait_for(timeout=60_000)
    if connected:
        page.locator(
            '.jp-Notebook-ExecutionIndicator[data-status="idle"], .jp-Notebook-ExecutionIndicator[data-status="busy"]'
        ).first.wait_for(timeout=60_000)
    return page


def run_cell(page: Any, index: int) -> None:
    """Run cell `index`; Lab can show an idle kernel a moment before it accepts a run, so try again once."""
    for _ in range(3):
        page.locator(CELLS).nth(index).locator(".cm-content").click()
        page.keyboard.press("Shift+Enter")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if prompt(page, index).strip() != "[ ]:":
                return
            time.sleep(0.2)
    raise AssertionError(f"cell {index} did not start running")


def shown(page: Any, index: int) -> str:
    """What cell `index` shows as output right now."""
    area = page.locator(CELLS).nth(index).locator(".jp-OutputArea")
    return area.inner_text() if area.count() else ""


def prompt(page: Any, index: int) -> str:
    return page.locator(CELLS).nth(index).locator(".jp-InputPrompt").inner_text()


def numbered(text: str, prefix: str = "line ") -> list[int]:
    return [int(line[len(prefix):]) for line in text.splitlines() if line.startswith(prefix)]
