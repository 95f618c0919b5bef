"""The config schema is the one place a key lives: checks, defaults and both manuals' reference pages agree with it.

Pure: files in tmp_path, no processes, no root.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import tomllib

from labshare import config
from labshare.config import reference, schema
from labshare.config.project import labshare_settings
from labshare.connect import hosts
from labshare.errors import LabshareError
from labshare.server import lifecycle

pytestmark = pytest.mark.quick  # pure: scripts/test runs it first, as an ordinary user

ROOT = Path(__file__).resolve().parent.parent

# Each section's dataclass; a section's keys are exactly its fields (Site holds [ports], [admin], [member]).
SECTIONS = {
    "server": config.ServerPolicy,
    "users.NAME": config.Limits,
    "hub": config.HubSettings,
    "hub.slurm": config.SlurmSettings,
    "gpus": config.GpuSettings,
    "hosts.NAME": hosts.HostSettings,
}
ON_SITE = {
    ("ports", "claims_dir"): "claims_dir",
    ("admin", "users"): "admins",
    ("member", "may_override"): "member_may_override",
}


def defaults(cls: type) -> dict[str, object]:
    return {
        f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING
    }


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_every_key_is_a_field_with_the_schemas_default(section: str) -> None:
    fields = defaults(SECTIONS[section])
    for name, key in schema.keys(section).items():
        assert name in fields, f"[{section}] {name} has no field in {SECTIONS[section].__name__}"
        if section == "hub" and name == "slurm":
            assert fields[name] == config.SlurmSettings()
        else:
            assert fields[name] == key.value, (section, name)


def test_site_keys_default_as_the_schema_says() -> None:
    site = defaults(config.Site)
    for (section, name), field in ON_SITE.items():
        assert site[field] == schema.default(section, name), (section, name)
    assert schema.default("member", "may_override") == frozenset(schema.OVERRIDABLE)
    assert "cull_busy_kernels" not in schema.OVERRIDABLE


def test_project_keys_are_what_tool_labshare_accepts() -> None:
    assert set(schema.keys("tool.labshare")) == {"env", "gpus"}
    for key in schema.KEYS:
        assert key.help and "\n" not in key.help and key.who, key


def refusal(write: Path, text: str, load) -> str:
    write.write_text(text)
    with pytest.raises(LabshareError) as caught:
        load(write)
    message = caught.value.message
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("text", "key", "close"),
    [
        ("[server]\nmood = 'tcp'\n", "[server] has no key `mood`", "mode"),
        ("serer = 1\n", "the top level has no key `serer`", "server"),
        ("[users.alice]\nmemory_mx = '1G'\n", "[users.alice] has no key `memory_mx`", "memory_max"),
        ("[groups.lab]\nmax_gpu = 1\n", "[groups.lab] has no key `max_gpu`", "max_gpus"),
        ("[hub.slurm]\npartitoin = 'a'\n", "[hub.slurm] has no key `partitoin`", "partition"),
        ("[gpus]\nasign = 'off'\n", "[gpus] has no key `asign`", "assign"),
        ("[member]\nmay_overide = []\n", "[member] has no key `may_overide`", "may_override"),
    ],
)
def test_an_unknown_site_key_names_the_file_the_key_and_the_closest(
    tmp_path: Path, text: str, key: str, close: str
) -> None:
    path = tmp_path / "site.toml"
    assert refusal(path, text, config.load_site) == (
        f"{path}: {key}; did you mean `{close}`? Fix or remove it, then try again."
    )


@pytest.mark.parametrize(
    ("text", "key", "close"),
    [
        ("[server]\nroot_dri = '~/x'\n", "[server] has no key `root_dri`", "root_dir"),
        ("[host.gpu1]\nlabshare = '/x'\n", "the top level has no key `host`", "hosts"),
        ("[hosts.gpu1]\nlocal_prot = 9000\n", "[hosts.gpu1] has no key `local_prot`", "local_port"),
    ],
)
def test_an_unknown_member_key_names_the_file_the_key_and_the_closest(
    tmp_path: Path, text: str, key: str, close: str
) -> None:
    path = tmp_path / "config.toml"
    expected = f"{path}: {key}; did you mean `{close}`? Fix or remove it, then try again."
    assert refusal(path, text, lambda p: config.load_user(p, config.Site())) == expected
    assert refusal(path, text, lambda p: hosts.load(p, "alice@gpu1")) == expected


def test_an_unknown_project_key_names_the_file_the_key_and_the_closest(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    assert refusal(
        path,
        "[tool.labshare]\nenvs = {}\n",
        lambda p: labshare_settings(tomllib.loads(p.read_text()), p),
    ) == (
        f"{path}: [tool.labshare] has no key `envs`; did you mean `env`? Fix or remove it, then try again."
    )


@pytest.mark.parametrize(
    ("text", "key", "given", "allowed"),
    [
        ("[server]\nmode = 'http'\n", "server.mode", "'http'", '`"socket"` or `"tcp"`'),
        ("[server]\nkeep_outputs = 'yes'\n", "server.keep_outputs", "'yes'", "true or false"),
        (
            "[server]\ncull_idle_kernels_after = 'soon'\n",
            "server.cull_idle_kernels_after",
            "'soon'",
            "a duration",
        ),
        (
            "[server]\ncull_idle_kernels_after = -1\n",
            "server.cull_idle_kernels_after",
            "-1",
            "a duration",
        ),
        ("[ports]\nrange = '10999-10000'\n", "ports.range", "'10999-10000'", 'a range "LOW-HIGH"'),
        (
            "[ports]\nclaims_dir = 'relative'\n",
            "ports.claims_dir",
            "'relative'",
            "an absolute path",
        ),
        ("[ports]\nalice = 80\n", "ports.alice", "80", "a port number 1024-65535"),
        ("[ports]\nalice = true\n", "ports.alice", "True", "a port number 1024-65535"),
        ("[users.alice]\ngpus = 'all'\n", "users.alice.gpus", "'all'", "a list of GPU indices"),
        ("[users.alice]\ngpus = [true]\n", "users.alice.gpus", "[True]", "a list of GPU indices"),
        ("[users.alice]\ncpus = 0\n", "users.alice.cpus", "0", "a positive number of CPUs"),
        ("[users.alice]\nmemory_max = 'lots'\n", "users.alice.memory_max", "'lots'", "a size"),
        ("[users.alice]\nmax_gpus = -1\n", "users.alice.max_gpus", "-1", "a whole number of GPUs"),
        ("[admin]\nusers = 'alice'\n", "admin.users", "'alice'", "a list of user names"),
        (
            "[member]\nmay_override = ['cull_busy_kernels']\n",
            "member.may_override",
            "['cull_busy_kernels']",
            "a list drawn from mode",
        ),
        ("[hub]\nport = 0\n", "hub.port", "0", "a port number 1-65535"),
        ("[hub]\nip = 'here'\n", "hub.ip", "'here'", "an IP address"),
        ("[hub.slurm]\ncpus = 1.5\n", "hub.slurm.cpus", "1.5", "a positive whole number"),
        ("[gpus]\nper_kernel = true\n", "gpus.per_kernel", "True", "a whole number of GPUs"),
        ("[gpus]\nsharing = 'some'\n", "gpus.sharing", "'some'", '`"exclusive"` or `"shared"`'),
    ],
)
def test_a_wrong_value_names_the_file_the_key_what_was_given_and_what_is_allowed(
    tmp_path: Path, text: str, key: str, given: str, allowed: str
) -> None:
    path = tmp_path / "site.toml"
    message = refusal(path, text, config.load_site)
    assert message.startswith(f"{path}: {key}: must be {allowed}") and message.endswith(
        f", got {given}."
    ), message


@pytest.mark.parametrize("value", ["true", "0", "70000", "'9000'"])
def test_local_port_must_be_a_port_number(tmp_path: Path, value: str) -> None:
    path = tmp_path / "config.toml"
    message = refusal(
        path, f"[hosts.gpu1]\nlocal_port = {value}\n", lambda p: hosts.load(p, "gpu1")
    )
    assert message.startswith(f"{path}: hosts.gpu1.local_port: must be a port number 1-65535, got ")
    path.write_text("[hosts.gpu1]\nlocal_port = 9000\nlabshare = '/opt/labshare/bin/labshare'\n")
    assert hosts.load(path, "alice@gpu1") == hosts.HostSettings("/opt/labshare/bin/labshare", 9000)
    assert hosts.load(path, "gpu2") == hosts.HostSettings()


def test_a_valid_site_config_gives_the_parsed_values(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(
        "[server]\ncull_idle_kernels_after = '1h'\n[ports]\nrange = '10000-10999'\nalice = 10001\n"
        "[users.alice]\ngpus = [0, 1]\ncpus = 2\n[hub]\nidle_timeout = 0\n[gpus]\nleases_dir = '/l'\n"
    )
    site = config.load_site(path)
    assert site.server == {"cull_idle_kernels_after": 3600.0}
    assert site.port_range == (10000, 10999) and site.port_assignments == {"alice": 10001}
    assert site.users["alice"] == config.Limits(gpus=(0, 1), cpus=2.0)
    assert site.hub.idle_timeout == 0.0 and site.gpus.leases_dir == Path("/l")


def test_a_tcp_port_below_1024_is_refused_as_the_sentence_says() -> None:
    with pytest.raises(
        LabshareError,
        match=re.escape("Port 80 is not a valid TCP port; pick one between 1024 and 65535."),
    ):
        lifecycle._check_port(80)


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_the_reference_pages_are_written_from_the_schema(lang: str) -> None:
    page = ROOT / reference.page(lang)
    text = page.read_text(encoding="utf-8")
    marked = {m.group(2) for m in reference.BLOCK.finditer(text)}
    sections = {k.section for k in schema.KEYS}
    assert marked == sections, f"{page}: no table for {sections - marked}"
    assert reference.render(text, lang) == text, (
        f"{page} differs from the config schema; run `python -m labshare.config.reference {lang}` "
        "from the checkout's root and commit the page."
    )


def test_the_members_cards_have_one_name_from_the_config_to_placement() -> None:
    from labshare.gpus import assign, place

    limits = config.Limits(gpus=(1, 2))
    policy = assign.GpuPolicy.of(config.GpuSettings(assign="per-kernel"), limits)
    assert policy.gpus == (1, 2) and assign.GpuPolicy.from_json(policy.to_json()) == policy
    earlier = policy.to_json().replace(
        '"gpus":', '"allowed":'
    )  # a server started before the rename
    assert assign.GpuPolicy.from_json(earlier) == policy
    assert (
        policy.placement(1).gpus
        == frozenset({1, 2})
        == place.PlacementRules(gpus=frozenset({1, 2})).gpus
    )


def test_regenerating_keeps_the_prose_and_refuses_a_section_the_schema_lacks() -> None:
    page = "Intro, kept.\n<!-- schema admin -->\n| stale |\n<!-- /schema -->\nOutro, kept.\n"
    done = reference.render(page, "en")
    assert done.startswith("Intro, kept.\n<!-- schema admin -->\n| key |")
    assert done.endswith("<!-- /schema -->\nOutro, kept.\n")
    assert "| stale |" not in done and "`users`" in done
    with pytest.raises(ValueError, match="no such section"):
        reference.render("<!-- schema nowhere -->\n<!-- /schema -->\n", "en")
