"""Options shared by many commands, declared once."""

from __future__ import annotations

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
yes_option = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
# A project's kernel settings, kept in its pyproject.toml: `env create` and `env adopt` take both.
env_option = click.option(
    "--env",
    "env_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Environment variable for the kernel, kept in pyproject.toml [tool.labshare] (repeatable).",
)
# connect, fleet and doctor reach servers through the member's own ssh, and pass these on to it.
ssh_option = click.option(
    "--ssh-option",
    "-o",
    "ssh_options",
    multiple=True,
    metavar="SSH_OPTION",
    help="An option for ssh, as in `ssh -o` (repeatable).",
)
gpus_option = click.option(
    "--gpus",
    "gpus",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="GPUs each kernel of the project leases (0: CPU only), kept in pyproject.toml [tool.labshare].",
)


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
