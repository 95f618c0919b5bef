"""Options shared by many commands, declared once."""

from __future__ import annotations

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
yes_option = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")


def confirm(question: str, yes: bool) -> bool:
    """Ask before touching anything labshare did not create; `--yes` answers for the user."""
    if yes:
        return True
    import sys

    if not sys.stdin.isatty():
        from labshare.errors import LabshareError

        raise LabshareError(
            f"{question} Not asked, since there is no terminal; pass --yes to confirm."
        )
    return click.confirm(question, default=False)
