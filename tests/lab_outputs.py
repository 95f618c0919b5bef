"""Helpers for the output-keeping tests: a labshare server in TCP mode, notebooks on disk, headless Chromium.

A browser cannot reach Jupyter over a Unix socket, so these servers run
with `--tcp` (127.0.0.1, token still required).  Chromium is Debian's,
driven by Playwright's Python package; every process it starts is found by
pid and killed when the browser is closed.
"""

from __future__ import annotations

import json
import time
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from browser import chromium, dialog_text, wait_for_kernel
from conftest import Member, wait_for  # wait_for: the output tests use it as lo.wait_for too
from jupyter_api import Lab

from labshare import probe

CELLS = ".jp-Notebook .jp-Cell"
RUNS: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


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
        {
            "cell_type": "code",
            "id": uuid.uuid4().hex[:8],
            "metadata": {},
            "source": src,
            "outputs": [],
            "execution_count": None,
        }
        for src in sources
    ]
    nb = {
        "cells": cells,
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {
                "name": "python3",
                "display_name": "Python 3 (ipykernel)",
                "language": "python",
            }
        },
    }
    path = root / name
    path.write_text(json.dumps(nb, indent=1))
    return path


def disk_cell(path: Path, index: int) -> tuple[str, int | None]:
    """The stream text and execution count of cell `index` as saved on disk.

    Jupyter saves in place (its atomic writing keeps a backup copy rather than
    renaming a new file in), so a read can land mid-save: read until the JSON is whole.
    """
    cell = wait_for(
        lambda: json.loads(path.read_text())["cells"][index],
        timeout=5,
        every=0.1,
        what=f"{path} to hold whole JSON",
        ignoring=(json.JSONDecodeError,),
    )
    text = "".join(
        "".join(out["text"]) if isinstance(out.get("text"), list) else out.get("text", "")
        for out in cell["outputs"]
        if out.get("output_type") == "stream"
    )
    return text, cell.get("execution_count")


def open_notebook(browser: Any, server: Server, name: str, connected: bool = True) -> Any:
    """A page with `name` open in Lab and (if `connected`) its kernel idle, or busy with a cell run earlier."""
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    _count_runs(page)
    page.goto(server.url(f"/lab/tree/{name}"))
    page.locator(CELLS).first.wait_for(timeout=60_000)
    if connected:
        wait_for_kernel(page)
    return page


def _count_runs(page: Any) -> None:
    """Count the runs the page sends: an HTTP POST to .../execute (server-side execution) or a kernel frame."""
    RUNS[page] = 0

    def http(request: Any) -> None:
        if request.method == "POST" and request.url.split("?")[0].endswith("/execute"):
            RUNS[page] += 1

    def frame(payload: str | bytes) -> None:
        if (b"execute_request" if isinstance(payload, bytes) else "execute_request") in payload:
            RUNS[page] += 1

    page.on("request", http)
    page.on("websocket", lambda ws: ws.on("framesent", frame))


def run_cell(page: Any, index: int) -> None:
    """Run cell `index` exactly once.

    Lab can show an idle kernel a moment before it accepts a run, so the key
    is pressed again, but only while no run has left the page: on a loaded
    machine a second press after a slow first one queued a second run, which
    replaced the first one's `input()` box.
    """
    before = RUNS[page]
    for _ in range(3):
        _not_blocked(page, index)
        page.locator(CELLS).nth(index).locator(".cm-content").click()
        page.keyboard.press("Shift+Enter")
        pressed = time.monotonic()
        while prompt(page, index).strip() == "[ ]:":
            _not_blocked(page, index)
            waited = time.monotonic() - pressed
            if RUNS[page] > before and waited > 60:
                raise AssertionError(
                    f"cell {index} was sent to run but Lab never marked it running"
                )
            if RUNS[page] == before and waited > 5:
                break
            page.wait_for_timeout(200)
        else:
            return
    raise AssertionError(f"cell {index} did not start running")


def _not_blocked(page: Any, index: int) -> None:
    if text := dialog_text(page):
        raise AssertionError(f"Lab shows a dialog instead of running cell {index}: {text!r}")


def shown(page: Any, index: int) -> str:
    """What cell `index` shows as output right now."""
    area = page.locator(CELLS).nth(index).locator(".jp-OutputArea")
    return area.inner_text() if area.count() else ""


def prompt(page: Any, index: int) -> str:
    return page.locator(CELLS).nth(index).locator(".jp-InputPrompt").inner_text()


def numbered(text: str, prefix: str = "line ") -> list[int]:
    return [int(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix)]
