"""The config reference tables, written from the schema, so the manual cannot drift from the code.

    python -m labshare.config.reference en|ja    # rewrites docs/LANG/reference/config.md

Only the lines between `<!-- schema SECTION -->` (or `<!-- schema SECTION WHO -->`,
only the keys WHO may set) and `<!-- /schema -->` are written: the prose,
examples and links around each table belong to the page and survive.  The
help lines are English in both manuals: one text per key to keep true, which
the Japanese page introduces as such.  tests/test_config_schema.py fails
when a committed page differs from what this writes.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from labshare.config import schema

HEADER = {
    "en": ("key", "type", "default", "set by", "meaning"),
    "ja": ("キー", "型", "既定値", "設定する人", "意味（英語）"),
}
WHO = {
    "en": {schema.SITE: "site", schema.MEMBER: "member", schema.PROJECT: "project"},
    "ja": {schema.SITE: "管理者", schema.MEMBER: "メンバ", schema.PROJECT: "プロジェクト"},
}
BLOCK = re.compile(r"(<!-- schema (\S+)(?: (\w+))? -->\n)(.*?)(<!-- /schema -->)", re.DOTALL)


def page(lang: str) -> Path:
    return Path("docs") / lang / "reference" / "config.md"


def _default(key: schema.Key) -> str:
    if key.default is None or key.default_doc:
        return key.default_doc or ""
    return f"`{json.dumps(key.default)}`"


def table(section: str, lang: str, who: str | None = None) -> str:
    """One section's keys as a Markdown table."""
    rows: list[tuple[str, ...]] = [HEADER[lang], ("---",) * len(HEADER[lang])]
    for key in schema.keys(section, who).values():
        rows.append(
            (
                f"`{key.name}`",
                key.kind.doc,
                _default(key),
                ", ".join(WHO[lang][w] for w in key.who),
                key.help,
            )
        )
    return "".join("| " + " | ".join(row) + " |\n" for row in rows)


def render(text: str, lang: str) -> str:
    """`text` with every marked block rewritten from the schema; an unknown section is an error, not a gap."""

    def block(m: re.Match[str]) -> str:
        if not schema.keys(m.group(2)):
            raise ValueError(f"<!-- schema {m.group(2)} -->: the schema has no such section")
        return m.group(1) + table(m.group(2), lang, m.group(3)) + m.group(5)

    return BLOCK.sub(block, text)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in HEADER:
        print(
            "usage: python -m labshare.config.reference en|ja  (run from the checkout's root)",
            file=sys.stderr,
        )
        return 2
    path = page(argv[0])
    if not path.is_file():
        print(f"{path} is not here; run this from the checkout's root.", file=sys.stderr)
        return 2
    path.write_text(render(path.read_text(encoding="utf-8"), argv[0]), encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
