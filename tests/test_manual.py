"""The manual builds offline with warnings as errors, and its references cannot drift from the code.

Both trees (docs/en, docs/ja) are built with `sphinx-build -W` as the test
suite's user, with no network where the machine allows it (`unshare -n` as
root), and the pages must load nothing from elsewhere.  The CLI reference must
list every command `labshare --help` lists, at every level; the config
reference every key config.py accepts, read from the schema and from the
loader's own "the keys are ..." answers rather than copied here; the exit-code and
JSON references exactly what ExitCode and the commands' result dataclasses
hold.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json
import os
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EN = DOCS / "en"
TREES = ("en", "ja")
BUILD_TIMEOUT = 240
REMOTE_ASSET = re.compile(
    r"""<script[^>]*\ssrc=["']https?://|<link[^>]*\shref=["']https?://|<img[^>]*\ssrc=["']https?://|url\(\s*["']?https?://""",
    re.IGNORECASE,
)


# ---------------------------------------------------------------- building


@functools.lru_cache(maxsize=1)
def offline_prefix() -> tuple[str, ...]:
    """`unshare -n` where this user may make a network namespace, so "offline" is proven, not assumed."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return (unshare, "-n")
    return ()


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory):
    """Builds a tree once per module: `build("en")` -> (returncode, output, html folder)."""
    done: dict[str, tuple[int, str, Path]] = {}

    def run(tree: str) -> tuple[int, str, Path]:
        if tree not in done:
            out = tmp_path_factory.mktemp(f"manual-{tree}")
            argv = [
                *offline_prefix(),
                sys.executable,
                "-m",
                "sphinx",
                "-W",
                "--keep-going",
                "-q",
                "-b",
                "html",
                "-d",
                str(out / "doctrees"),
                str(DOCS / tree),
                str(out / "html"),
            ]
            proc = subprocess.run(
                argv, capture_output=True, text=True, timeout=BUILD_TIMEOUT, cwd=ROOT
            )
            done[tree] = (proc.returncode, proc.stdout + proc.stderr, out / "html")
        return done[tree]

    return run


@pytest.mark.slow
@pytest.mark.parametrize("tree", TREES)
def test_manual_builds_offline_with_warnings_as_errors(build, tree: str) -> None:
    assert (DOCS / tree / "conf.py").is_file(), f"docs/{tree}/conf.py is missing"
    assert (DOCS / tree / "index.md").is_file(), (
        f"docs/{tree}/index.md is missing: the {tree} tree has no front page yet"
    )
    code, output, html = build(tree)
    assert code == 0, f"sphinx-build -W docs/{tree} failed:\n{output}"
    remote = [
        str(page.relative_to(html))
        for page in html.rglob("*")
        if page.suffix in (".html", ".css")
        and REMOTE_ASSET.search(page.read_text(errors="replace"))
    ]
    assert not remote, f"pages that load something from the network: {remote}"


# ---------------------------------------------------------------- the CLI reference


def help_text(*words: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "labshare", *words, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, f"labshare {' '.join(words)} --help failed:\n{done.stderr}"
    return done.stdout


def listed_subcommands(text: str) -> list[str]:
    """The names under every heading of a --help except Usage and Options (click's `Commands:` or labshare's own)."""
    names: list[str] = []
    listing = False
    for line in text.splitlines():
        if re.match(r"^\S.*:$", line):
            listing = line not in ("Options:",) and not line.startswith("Usage:")
        elif listing and (m := re.match(r"^  ([a-z][a-z0-9-]*)(\s|$)", line)):
            names.append(m.group(1))
    return names


def every_command() -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    todo: list[tuple[str, ...]] = [()]
    while todo:
        words = todo.pop(0)
        for name in listed_subcommands(help_text(*words)):
            found.append((*words, name))
            todo.append((*words, name))
    return found


def test_help_parser_finds_the_top_level_commands() -> None:
    names = listed_subcommands(help_text())
    assert {"start", "status", "connect", "env", "admin"} <= set(names), names


@pytest.mark.slow
def test_cli_reference_lists_every_command_help_lists(build) -> None:
    code, output, html = build("en")
    assert code == 0, output
    page = (html / "reference" / "cli.html").read_text()
    commands = every_command()
    assert ("env", "create") in commands and ("admin", "stop") in commands, commands
    missing = [
        " ".join(("labshare", *c))
        for c in commands
        if f'<section id="{"-".join(("labshare", *c))}">' not in page
    ]
    assert not missing, f"reference/cli.md does not document {missing}"


# ---------------------------------------------------------------- the config reference


def sections(text: str) -> dict[str, str]:
    """`## Heading` -> its text up to the next heading of level 1 or 2 (code fences skipped)."""
    out: dict[str, str] = {}
    current: str | None = None
    fence = False
    for line in text.splitlines():
        if line.startswith("```"):
            fence = not fence
        if not fence and re.match(r"^#{1,2} ", line):
            current = line.lstrip("#").strip()
            out[current] = ""
        elif current is not None:
            out[current] += line + "\n"
    return out


def row_keys(body: str) -> set[str]:
    """`key` from the first cell of every table row."""
    return set(re.findall(r"^\|\s*`([^`]+)`", body, flags=re.MULTILINE))


def known_answer(error: str) -> set[str] | None:
    m = re.search(r"has no key `[^`]*`; the keys are (.*?)\. Fix", error)
    return set(re.findall(r"`([^`]+)`", m.group(1))) if m else None


def site_keys(tmp_path: Path) -> dict[str, set[str]]:
    """Table -> the keys load_site accepts, from the module's sets and from its own refusals."""
    from labshare import config
    from labshare.config import schema

    path = tmp_path / "site.toml"

    def probe(text: str) -> set[str] | None:
        path.write_text(text)
        try:
            config.load_site(path)
        except config.ConfigError as exc:
            return known_answer(str(exc))
        return None

    tables = probe("zz_not_a_key = 1\n")
    assert tables and {"server", "hub"} <= tables, tables
    keys: dict[str, set[str]] = {}
    for table in sorted(tables):
        keys[table] = probe(f"[{table}]\nzz_not_a_key = 1\n") or set()
    for table in ("users", "groups"):  # their keys are names; each name's table holds the limits
        del keys[table]
        keys[f"{table}.NAME"] = probe(f"[{table}.somebody]\nzz_not_a_key = 1\n") or set()
        assert keys[f"{table}.NAME"] == set(schema.keys("users.NAME"))
    keys["hub.slurm"] = probe("[hub.slurm]\nzz_not_a_key = 1\n") or set()
    assert keys["server"] == set(schema.keys("server"))
    assert keys["hub"] == set(schema.keys("hub"))
    # [ports] keys other than these two are user names, so load_site names no "known" list for it.
    keys["ports"] = {"range", "claims_dir"}
    return keys


def member_tables(tmp_path: Path) -> set[str]:
    from labshare import config

    path = tmp_path / "user.toml"
    path.write_text("zz_not_a_key = 1\n")
    with pytest.raises(config.ConfigError) as caught:
        config.load_user(path, config.Site())
    return known_answer(str(caught.value)) or set()


def config_sections() -> dict[str, str]:
    return sections((EN / "reference" / "config.md").read_text())


def section_for(where: str, table: str) -> str:
    """The text of the config reference's sections for `[table]` on `where` ("Site" or "Member")."""
    found = [
        body
        for heading, body in config_sections().items()
        if heading.startswith(where) and f"`[{table}]`" in heading
    ]
    assert found, f"reference/config.md has no '## {where}: `[{table}]`' section"
    return "".join(found)


@pytest.mark.quick
def test_config_reference_documents_every_site_key(tmp_path: Path) -> None:
    for table, keys in site_keys(tmp_path).items():
        missing = sorted(keys - row_keys(section_for("Site", table)))
        assert not missing, f"reference/config.md, [{table}]: no row for {missing}"


@pytest.mark.quick
def test_config_reference_documents_the_member_config(tmp_path: Path) -> None:
    from labshare.config import schema
    from labshare.connect import hosts

    tables = member_tables(tmp_path)
    assert {"server", "hosts"} <= tables, tables
    assert row_keys(section_for("Member", "hosts.NAME")) >= set(
        hosts.HostSettings.__dataclass_fields__
    )
    member = section_for("Member", "server")
    missing = [k for k in sorted(schema.OVERRIDABLE) if f"`{k}`" not in member]
    assert not missing, f"reference/config.md, member [server]: {missing} not named"


def toml_literal(value: object) -> str:
    return json.dumps(value) if isinstance(value, (bool, str, int, float)) else repr(value)


@pytest.mark.quick
def test_config_reference_defaults_match_config_py() -> None:
    from labshare import config
    from labshare.config import schema

    def default_cell(table: str, key: str) -> str:
        m = re.search(
            rf"^\|\s*`{re.escape(key)}`\s*\|[^|]*\|([^|]*)\|",
            section_for("Site", table),
            re.MULTILINE,
        )
        assert m, f"reference/config.md, [{table}]: no row for {key}"
        return m.group(1)

    policy = {f.name: f.default for f in dataclasses.fields(config.ServerPolicy)}
    for key in sorted(schema.keys("server")):
        if policy.get(key) is not None:
            assert toml_literal(policy[key]) in default_cell("server", key), (key, policy[key])
    hub = {f.name: f.default for f in dataclasses.fields(config.HubSettings)}
    for key in sorted(set(schema.keys("hub")) - {"slurm"}):
        if isinstance(hub.get(key), (str, int)):
            assert toml_literal(hub[key]) in default_cell("hub", key), (key, hub[key])
    assert toml_literal(schema.key("ports", "claims_dir").default) in default_cell(
        "ports", "claims_dir"
    )


# ---------------------------------------------------------------- exit codes, doctor, JSON


@pytest.mark.quick
def test_exit_code_reference_is_exactly_exitcode() -> None:
    from labshare.errors import ExitCode

    text = (EN / "reference" / "exit-codes.md").read_text()
    documented = {
        name: int(code)
        for code, name in re.findall(r"^\|\s*(\d+)\s*\|\s*`([A-Z_]+)`", text, re.MULTILINE)
    }
    assert documented == {member.name: member.value for member in ExitCode}


@pytest.mark.quick
def test_doctor_page_names_every_check() -> None:
    source = "".join(p.read_text() for p in (ROOT / "src" / "labshare" / "doctor").rglob("*.py"))
    names = set(re.findall(r'\bCheck\(\s*"([a-z][a-z-]*)"', source))
    assert len(names) >= 10, f"found only {sorted(names)}: has the way checks are named changed?"
    page = (EN / "howto" / "doctor.md").read_text()
    assert not [n for n in sorted(names) if f"`{n}`" not in page]


@functools.cache
def result_class(name: str) -> type:
    """A result dataclass by name ("hub.Plan" where the name alone is not unique), wherever it is kept.

    Looked up rather than imported by path, since the modules are being moved.
    """
    import labshare

    package, _, name = name.rpartition(".")
    prefix = f"labshare.{package}" if package else "labshare"
    found = []
    for info in pkgutil.walk_packages(labshare.__path__, "labshare."):
        if not (info.name == prefix or info.name.startswith(prefix + ".")):
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:
            continue
        cls = getattr(module, name, None)
        if (
            isinstance(cls, type)
            and dataclasses.is_dataclass(cls)
            and cls.__module__ == module.__name__
        ):
            found.append(cls)
    assert len(found) == 1, f"dataclass {name} under {prefix}: found {found}"
    return found[0]


def fields(name: str) -> set[str]:
    return {f.name for f in dataclasses.fields(result_class(name))}


JSON_SECTIONS = {
    "`labshare status --json`": ["ServerStatus"],
    "`labshare start --json`, `labshare restart --json`": ["StartResult"],
    "`labshare stop --json`": ["StopResult"],
    "`labshare logs --json`": ["LogEntry"],
    "`labshare env create --json`, `labshare env adopt --json`": ["EnvResult"],
    "`labshare env list --json`": ["KernelEntry"],
    "`labshare env remove --json`": ["RemoveResult"],
    "`labshare kernels prune --json`": ["PruneResult"],
    "`labshare doctor --json`": ["Report", "Check"],
    "`labshare ps --json`": ["Server", "Kernel", "LeasedCard"],
    "`labshare top --json`": ["TopFrame", "CardUse"],
    "`labshare gpus --json`": ["GpusReport", "CardRow", "LeaseRow", "Unleased"],
    "`labshare admin check --json`": ["SiteCheck", "MemberPolicy", "GpuSettings"],
    "`labshare admin ports --json`": ["PortRow"],
    "`labshare admin stop --json`": ["AdminStopResult"],
    "`labshare hub-config --json`": ["HubConfig", "hub.Plan", "RunningServer", "Step"],
    "`labshare connect --print --json`": ["Manual"],
}


def json_sections() -> dict[str, str]:
    return sections((EN / "reference" / "json.md").read_text())


@pytest.mark.quick
def test_json_reference_names_every_field_of_every_result() -> None:
    found = json_sections()
    problems = []
    for heading, classes in JSON_SECTIONS.items():
        body = found.get(heading)
        if body is None:
            problems.append(f"no section '## {heading}'")
            continue
        for cls in classes:
            problems += [
                f"{heading}: {cls}.{f}" for f in sorted(fields(cls)) if f"`{f}`" not in body
            ]
    info = found.get("`labshare info --json`", "")
    problems += [
        f"info: {f}"
        for f in sorted(fields("ServerInfo") - fields("ServerStatus"))
        if f"`{f}`" not in info
    ]
    assert not problems, "reference/json.md is missing:\n" + "\n".join(problems)


@pytest.mark.quick
def test_json_reference_shows_the_error_object(capsys: pytest.CaptureFixture[str]) -> None:
    from labshare import render

    render.failure("it broke", 4, "more")
    shown = json.loads(capsys.readouterr().out)
    render.failure("it broke", 4, None)
    bare = json.loads(capsys.readouterr().out)
    assert set(bare["error"]) < set(shown["error"]), "detail is left out when there is none"
    errors = json_sections()["Errors"]
    assert row_keys(errors) >= set(shown["error"])
    assert '{"error": {"message":' in errors.replace("\n", " ")


@pytest.mark.quick
def test_json_reference_lists_every_connect_event() -> None:
    source = "".join(p.read_text() for p in (ROOT / "src" / "labshare").rglob("*.py"))
    events = set(re.findall(r'"event":\s*"([a-z_]+)"', source))
    assert {"ready", "closed", "error"} <= events, events
    found = json_sections()
    table = row_keys(found["Connect events"])
    missing = sorted(events - {"print"} - table)
    assert not missing, f"reference/json.md, Connect events: no row for {missing}"
    assert '{"event": "print"' in found["`labshare connect --print --json`"]
