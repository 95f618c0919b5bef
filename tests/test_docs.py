"""The README's commands run as written, so the front door cannot drift from the code.

Every ```bash block under the Quickstart and the member's daily loop runs, one
command at a time, in a fresh isolated HOME, and must exit 0.  Laptop-only
commands (`labshare connect`, covered by test_connect with a real sshd) and
`bash scripts/test` (this very suite) are skipped; `sh scripts/install` only
links the test venv's labshare into ~/.local/bin, since test_install runs the
real script from a fresh account.  The Japanese manual must name every
command the English manual's command tables list.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
from pathlib import Path

import pytest
from conftest import LABSHARE, Member

from labshare.errors import LabshareError

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
JA = ROOT / "docs" / "ja"
EN = ROOT / "docs" / "en"
TESTED_SECTIONS = ("quickstart", "the member's daily loop")
SKIPPED = {
    ("labshare", "connect"): "laptop-only, covered by test_connect",
    ("bash", "scripts/test"): "runs this very suite",
}
FOLLOW_SECONDS = 5


def sections(text: str) -> dict[str, str]:
    """`## Heading` -> its text up to the next `##` or `#` heading (### subsections included)."""
    out: dict[str, str] = {}
    current: str | None = None
    fence = False
    for line in text.splitlines():
        if line.startswith("```"):
            fence = not fence
        if not fence and re.match(r"^#{1,2} ", line):
            current = line.lstrip("#").strip().lower()
            out[current] = ""
        elif current is not None:
            out[current] += line + "\n"
    return out


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def commands(block: str) -> list[str]:
    """One command per line (backslash continuations joined), comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    out = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            out.append(
                shlex.join(words)
                if "&&" not in words and "|" not in words
                else line.split(" #")[0].strip()
            )
    return out


def documented_commands() -> list[str]:
    found = []
    for name in TESTED_SECTIONS:
        body = sections(README.read_text()).get(name)
        assert body is not None, f"README.md has no '## {name}' section"
        for block in bash_blocks(body):
            found += commands(block)
    return found


def skip_reason(command: str) -> str | None:
    words = shlex.split(command)
    for prefix, why in SKIPPED.items():
        if tuple(words[: len(prefix)]) == prefix:
            return why
    return None


def runnable(command: str) -> str:
    """`sh scripts/install` links the test venv's labshare, built from this checkout, where it would go."""
    link = f"mkdir -p ~/.local/bin && ln -sf {shlex.quote(LABSHARE)} ~/.local/bin/labshare"
    return re.sub(r"(^|&&\s*)sh scripts/install(?=\s|$)", lambda m: m.group(1) + link, command)


def follows(command: str) -> bool:
    return bool({"-f", "--follow"} & set(shlex.split(command)))


def stop_by_pid(m: Member) -> None:
    try:
        state = m.state()
    except (OSError, ValueError, LabshareError):
        return
    for pid in (state.pid, state.supervisor_pid):
        if pid:
            try:
                os.kill(int(pid), signal.SIGTERM)
            except ProcessLookupError:
                pass


def test_quickstart_and_daily_loop_run_as_written(member: Member) -> None:
    import labshare

    listed = documented_commands()
    ran: list[str] = []
    work = member.home / "work"
    work.mkdir()
    try:
        for command in listed:
            if skip_reason(command):
                continue
            script = runnable(command)
            if follows(script):
                script = f"timeout {FOLLOW_SECONDS} {script}; rc=$?; [ $rc = 0 ] || [ $rc = 124 ]"
            done = member.run_cmd(["bash", "-c", script], cwd=str(work), timeout=300)
            assert done.returncode == 0, (
                f"README command `{command}` failed ({done.returncode}):\n{done.stderr}"
            )
            ran.append(command)
        assert any("labshare start" in c for c in ran), listed
        assert member.json("status")["running"]
    finally:
        stop_by_pid(member)
    assert [c for c in listed if skip_reason(c)] == [c for c in listed if c not in ran]


@pytest.mark.quick
def test_skips_are_only_laptop_and_suite_commands() -> None:
    listed = documented_commands()
    assert listed, "no ```bash command blocks under the Quickstart and daily loop"
    for command in listed:
        why = skip_reason(command)
        assert why is None or "connect" in command or "scripts/test" in command


def table_commands(text: str) -> list[str]:
    """`labshare start`, `labshare env create`, ... from the first cell of every command table row."""
    found = []
    for line in text.splitlines():
        m = re.match(r"^\|\s*`labshare ([^`]*)`", line)
        if not m:
            continue
        words = []
        for word in m.group(1).replace("\\|", " ").split():
            if not re.fullmatch(r"[a-z][a-z-]*", word):
                break
            words.append(word)
        if words:
            found.append("labshare " + " ".join(words))
    return list(dict.fromkeys(found))


def english_pages() -> str:
    """The English pages the Japanese tree mirrors (topics and reference stay English-only)."""
    return "\n".join(
        p.read_text()
        for part in ("tutorial", "howto", "admin")
        for p in sorted((EN / part).glob("*.md"))
    )


@pytest.mark.quick
def test_japanese_manual_names_every_command_of_the_english_tables() -> None:
    english = table_commands(english_pages())
    assert {"labshare start", "labshare status", "labshare stop"} <= set(english), english
    japanese = (JA / "index.md").read_text()
    missing = [c for c in english if c not in japanese]
    assert not missing, f"docs/ja/index.md does not mention {missing}"
    assert re.search(r"[\u3040-\u30ff]", japanese), "docs/ja/index.md is not in Japanese"
    for name in ("クイックスタート", "毎日の使い方", "セキュリティモデル", "性能", "JupyterHub"):
        assert name in japanese


@pytest.mark.quick
def test_japanese_site_config_example_loads_and_uses_every_key(tmp_path: Path) -> None:
    from labshare import config
    from labshare.config import schema

    block = re.search(
        r"^```toml\n(.*?)^```",
        (JA / "admin" / "site-policy.md").read_text(),
        flags=re.DOTALL | re.MULTILINE,
    )
    assert block, "no site config example in docs/ja/admin/site-policy.md"
    path = tmp_path / "config.toml"
    path.write_text(block.group(1))
    site = config.load_site(path)
    assert set(site.server) == set(schema.keys("server"))
    assert site.port_range and site.port_assignments and site.claims_dir
    limits = [*site.users.values(), *site.groups.values()]
    assert limits and all(lim.gpus is not None and lim.memory_max and lim.cpus for lim in limits)
    assert site.admins and site.member_may_override
    data = config.values.tomllib.loads(block.group(1))
    assert set(data["hub"]) == set(schema.keys("hub"))
    assert set(data["hub"]["slurm"]) == {
        f.name for f in __import__("dataclasses").fields(config.SlurmSettings)
    }


@pytest.mark.quick
def test_migration_guide_covers_the_old_routine() -> None:
    text = (JA / "howto" / "from-screen.md").read_text()
    for needle in (
        "screen",
        "10001",
        "--NotebookApp.token=''",
        "Rye",
        "labshare env adopt",
        "labshare env list",
        "labshare kernels prune",
        "labshare doctor --stop-old",
        "labshare connect",
    ):
        assert needle in text, needle
