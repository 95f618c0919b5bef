"""`labshare completion SHELL`: print the tab-completion script and say where to put it.

The script is click's own (the `_LABSHARE_COMPLETE` protocol), so completion
always follows the commands and options that exist, with nothing to regenerate.
"""

from __future__ import annotations

import sys

import click

from labshare.errors import LabshareError

SHELLS = ("bash", "zsh", "fish")
WHERE = {
    "bash": "labshare completion bash > ~/.local/share/bash-completion/completions/labshare",
    "zsh": "labshare completion zsh > ~/.zfunc/_labshare   "
    "# with `fpath+=~/.zfunc; autoload -Uz compinit; compinit` in ~/.zshrc",
    "fish": "labshare completion fish > ~/.config/fish/completions/labshare.fish",
}


def script(shell: str) -> str:
    """click's completion script for `labshare` in `shell`."""
    from click.shell_completion import get_completion_class

    from labshare.cli import cli

    cls = get_completion_class(shell)
    if cls is None:
        raise LabshareError(f"No completion for {shell}; choose one of {', '.join(SHELLS)}.")
    return cls(cli, {}, "labshare", "_LABSHARE_COMPLETE").source()


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the tab-completion script for bash, zsh or fish.

    \b
    Try it now:     eval "$(labshare completion bash)"
    Keep it (bash): labshare completion bash > ~/.local/share/bash-completion/completions/labshare
    Keep it (zsh):  labshare completion zsh > ~/.zfunc/_labshare
    Keep it (fish): labshare completion fish > ~/.config/fish/completions/labshare.fish
    """
    click.echo(script(shell), nl=False)
    if not sys.stdout.isatty():
        return
    click.echo(f"\n# To keep it: {WHERE[shell]}", err=True)
