"""`labshare env remove NAME|PATH`: unregister a kernel; its files stay unless asked for."""

from __future__ import annotations

import click

from labshare.cli import App
from labshare.cli.options import confirm, json_option, yes_option
from labshare.errors import LabshareError
from labshare.render import emit
from labshare.render import envs as view


@click.command()
@click.argument("target", metavar="NAME|PATH")
@click.option("--delete-files", is_flag=True, help="Also delete the project folder (asks first).")
@yes_option
@json_option
@click.pass_obj
def remove(app: App, target: str, delete_files: bool, yes: bool, as_json: bool) -> None:
    """Unregister a kernel, by kernel name, project name or project folder.

    The project's files stay unless you pass --delete-files and confirm.
    """
    from labshare.envs import kernels, projects

    places = kernels.KernelPlaces.current()
    entry = projects.resolve(places, target)
    if entry.owner != "labshare" and not confirm(
        f"{entry.name} ({entry.display_name}) was not made by labshare; remove it anyway?", yes
    ):
        raise click.exceptions.Abort()
    if delete_files:
        if not entry.project:
            raise LabshareError(
                f"{entry.name} has no project folder labshare knows of; drop --delete-files."
            )
        if not confirm(f"Delete the folder {entry.project} and everything in it?", yes):
            raise click.exceptions.Abort()
    emit(
        projects.remove(places, entry, delete_files=delete_files),
        as_json=as_json,
        text=view.removed,
    )
