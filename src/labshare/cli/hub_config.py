"""`labshare hub-config`: the lab's JupyterHub config, made from the site config.

A file not written by labshare is only replaced after asking.
"""

from __future__ import annotations

from pathlib import Path

import click

from labshare.cli import App
from labshare.cli.options import confirm, json_option, yes_option
from labshare.errors import ExitCode
from labshare.render import emit
from labshare.render import hub as view


@click.command("hub-config")
@click.option(
    "--spawner",
    type=click.Choice(["systemd", "slurm", "kubernetes"]),
    default="systemd",
    show_default=True,
    help="Where members' servers run: this server, a Slurm cluster, or Kubernetes.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the config to this file instead of printing it.",
)
@click.option(
    "--plan", "show_plan", is_flag=True, help="Print the migration steps for this host instead."
)
@yes_option
@json_option
@click.pass_obj
def hub_config(
    app: App, spawner: str, output: Path | None, show_plan: bool, yes: bool, as_json: bool
) -> ExitCode:
    """Move the lab to JupyterHub: write jupyterhub_config.py (or values.yaml) from the site config."""
    from labshare import hub
    from labshare.files import write_atomic
    from labshare.hub import render as hub_text

    if show_plan:
        from labshare.hub import facts, plan

        emit(
            plan.make(facts.gather(app.paths.site_config), spawner), as_json=as_json, text=view.plan
        )
        return ExitCode.OK
    command = f"labshare hub-config --spawner {spawner}" + (f" -o {output}" if output else "")
    result = hub.generate(app.paths.site_config, spawner, command)
    if output is None:
        emit(result, as_json=as_json, text=lambda r: r.text.rstrip("\n"))
        return ExitCode.OK
    if output.exists() and not hub_text.is_ours(output.read_text(errors="replace")):
        if not confirm(f"{output} exists and was not written by labshare; replace it?", yes):
            raise click.exceptions.Abort()
    write_atomic(output, result.text, mode=0o644)
    result.written_to = str(output)
    emit(result, as_json=as_json, text=view.written)
    return ExitCode.OK
