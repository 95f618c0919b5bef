"""Sphinx settings the English and the Japanese manual share.

Each tree's conf.py is a few lines that import this and set its language, so
the two manuals look alike and build alike: MyST Markdown, the theme the
Jupyter projects use (pydata-sphinx-theme), and the CLI reference made by
sphinx-click from the real click commands, so it cannot drift from the code.
Everything here works offline: no remote icons, fonts, analytics or
version switcher, because the test suite builds both trees with -W on a
machine without a network.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
SRC = DOCS.parent / "src"
# Document the code in this checkout, not whatever labshare happens to be installed.
sys.path.insert(0, str(SRC))

import click  # noqa: E402

import labshare  # noqa: E402
from labshare.cli import cli  # noqa: E402


def load_every_command(group: click.Command, ctx: click.Context | None = None) -> None:
    """Import every lazily wired subcommand up front.

    sphinx-click lists a group's already loaded `commands` when there are
    any and asks `list_commands` only when there are none, so one command
    loaded early would hide the others from the reference.
    """
    if not isinstance(group, click.Group):
        return
    ctx = ctx or click.Context(group, info_name=group.name)
    for name in group.list_commands(ctx):
        sub = group.get_command(ctx, name)
        if sub is not None:
            load_every_command(sub, click.Context(sub, info_name=name, parent=ctx))


load_every_command(cli)

project = "labshare"
author = "the labshare authors"
copyright = "the labshare authors"
release = labshare.__version__
version = ".".join(release.split(".")[:2])

extensions = ["myst_parser", "sphinx_click"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "**/.ipynb_checkpoints"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
# Unlabelled blocks are sample output; a lexer that cannot parse one would warn, and -W fails.
highlight_language = "none"

html_theme = "pydata_sphinx_theme"
html_title = "labshare"
html_static_path: list[str] = []
html_show_sourcelink = False
html_copy_source = False
html_theme_options = {
    # The manual's parts are captions of one flat toctree, so the header would list all 26
    # pages; the whole tree goes in the left sidebar instead, grouped by reader.
    "navbar_center": [],
    # The switcher fetches a JSON file from a URL at page load; there is only one version here.
    "navbar_end": ["theme-switcher", "navbar-icon-links"],
    "navbar_persistent": ["search-button"],
    "icon_links": [],
    "use_edit_page_button": False,
    "show_prev_next": True,
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "globaltoc_maxdepth": 1,
    "footer_start": ["copyright"],
    "footer_end": [],
}
html_sidebars = {"**": ["globaltoc.html"]}


def sibling_role(lang: str):
    """A role linking to a page of the other language's tree: {en}`reference/cli` or {en}`title <reference/cli>`.

    MyST cannot link outside its own source folder, and the trees are
    built as siblings (OUT/en, OUT/ja), so the link is made relative to the
    current page; a page that does not exist is an error, as any broken link.
    """
    from docutils import nodes
    from docutils.utils import unescape

    def role(name: str, rawtext: str, text: str, lineno: int, inliner: Any,
             options: dict | None = None, content: list | None = None):
        text = unescape(text)
        title, target = text, text
        if text.endswith(">") and " <" in text:
            title, _, target = text[:-1].rpartition(" <")
        page, _, fragment = target.partition("#")
        if not (DOCS / lang / f"{page}.md").is_file():
            msg = inliner.reporter.error(f"docs/{lang}/{page}.md does not exist", line=lineno)
            return [inliner.problematic(rawtext, rawtext, msg)], [msg]
        docname = inliner.document.settings.env.docname
        up = "../" * (docname.count("/") + 1)
        uri = f"{up}{lang}/{page}.html" + (f"#{fragment}" if fragment else "")
        return [nodes.reference(rawtext, title, refuri=uri)], []

    return role


def setup(app: Any) -> dict[str, bool]:
    for lang in ("en", "ja"):
        app.add_role(lang, sibling_role(lang))
    return {"parallel_read_safe": True, "parallel_write_safe": True}
