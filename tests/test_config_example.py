"""The manual's site config example names every key labshare knows, and loads as it stands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from labshare import config
from labshare.config import schema

pytestmark = pytest.mark.quick  # pure: scripts/test runs it first, as an ordinary user

PAGE = Path(__file__).resolve().parent.parent / "docs" / "en" / "admin" / "site-policy.md"


def test_site_config_example_is_valid_and_complete(tmp_path: Path) -> None:
    block = re.search(r"## Every key.*?```toml\n(.*?)```", PAGE.read_text(), re.DOTALL)
    assert block, f"{PAGE.name} has no site config example under '## Every key'"
    path = tmp_path / "config.toml"
    path.write_text(block.group(1))
    site = config.load_site(path)
    assert set(site.server) == set(schema.keys("server"))
    assert site.port_range == (10000, 10999) and site.port_assignments == {"alice": 10001}
    assert site.users["alice"].gpus == (0, 1) and site.groups["students"].memory_max == "16G"
    assert site.admins == ("alice",)
    assert site.gpus.leased, "the example shows GPU leases on"
    text = block.group(1)
    keys = {
        k.name for k in schema.KEYS if k.section in ("hub", "hub.slurm", "gpus", "users.NAME")
    } - {"slurm"}
    for key in keys | {"claims_dir", "may_override"}:
        assert re.search(rf"^{key} = ", text, re.MULTILINE), key
