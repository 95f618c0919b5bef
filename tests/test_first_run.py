"""A member's first minutes in Lab, in a real headless Chromium: nothing asks what labshare knows.

Stock JupyterLab greets every new user with "Would you like to get notified
about official Jupyter news?", and its extension manager asks to be turned
on, only to pip-install into labshare's own environment.  labshare answers
both with JupyterLab's own settings, shipped as overrides.d defaults, so a
member who wants either back sets it in their own settings, which win; the
server's extension manager is read-only whatever the page says.
"""

from __future__ import annotations

import json
from pathlib import Path

from browser import chromium, dialog_text, wait_for_kernel
from conftest import Member, lab_of

NEWS = "Would you like to get notified about official Jupyter news?"
TOAST = ".jp-toast-message"  # the text of any toast Lab pops up
# The status bar's notification count: news that did not pop up as a toast would still be counted here.
BELL = ".jp-Notification-Status"
EXTENSIONS_TAB = "[data-id='extensionmanager.main-view']"


def lab_url(m: Member) -> str:
    info = m.json("info")
    return f"http://127.0.0.1:{info['port']}/lab?token={info['token']}"


def test_first_lab_asks_nothing_and_a_member_can_ask_for_the_news_again(
    member: Member, tmp_path: Path
) -> None:
    member.run("start", "--tcp", check=True)
    url = lab_url(member)
    with chromium(tmp_path / "shots", tag="first-run") as browser:
        page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        page.goto(url)
        tiles = page.locator(".jp-LauncherCard[data-category='Notebook']")
        tiles.first.wait_for(timeout=120_000)
        assert tiles.all_inner_texts() == [
            "Python 3 (default)"
        ]  # the member's own kernel, and only it
        tiles.first.click()
        wait_for_kernel(page)  # well after Lab restored, when the news question would have come
        assert dialog_text(page) == ""
        assert page.locator(TOAST).count() == 0, page.locator(TOAST).all_inner_texts()
        assert page.locator(BELL).inner_text().strip() == "0"
        assert page.locator(EXTENSIONS_TAB).count() == 0

        theirs = member.home / ".jupyter/lab/user-settings/@jupyterlab/apputils-extension"
        theirs.mkdir(parents=True)
        (theirs / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "none"}))
        again = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        again.goto(url)
        again.locator(TOAST, has_text=NEWS).wait_for(timeout=120_000)


def test_the_extension_manager_installs_nothing_into_labshares_environment(member: Member) -> None:
    member.run("start", check=True)
    lab = lab_of(member)
    done = lab.call(
        "POST", "/lab/api/extensions", {"cmd": "install", "extension_name": "jupyterlab-git"}
    )
    assert done.status == 422 and b"blocked" in done.body
