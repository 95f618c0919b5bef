"""The README's site config example names every key labshare knows, and loads as it stands."""

from __future__ import annotations

import re
from pathlib import Path

from labshare import config

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_site_config_example_is_valid_and_complete(tmp_path: Path) -> None:
    block = re.search(r"## For admins: site policy.*?```toml\n(.*?)```", README.read_text(), re.DOTALL)
    assert block, "README has no site config example"
    path = tmp_path / "config.toml"
    path.write_text(block.group(1))
    site = config.load_site(path)
    assert set(site.server) == config.SERVER_KEYS
    assert site.port_range == (10000, 10999) and site.port_assignments == {"alice": 10001}
    assert site.users["alice"].gpus == (0, 1) and site.groups["students"].memory_max == "16G"
    assert site.admins == ("alice",)
    text = block.group(1)
    for key in (config.HUB_KEYS - {"slurm"}) | config._SLURM_TEXT | {"cpus", "claims_dir", "may_override"}:
        assert re.search(rf"^{key} = ", text, re.MULTILINE), key
