"""`labshare admin notices install|serve`: root's service that sends members' notices to the lab's channels."""

from __future__ import annotations

import click

from labshare.cli import App
from labshare.cli.options import json_option
from labshare.render import emit


@click.group()
def notices() -> None:
    """The lab's notice channels: set up the service, or run it in the foreground."""


@notices.command()
@click.option("--no-unit", is_flag=True, help="Make the spool and channels file only (no systemd).")
@json_option
@click.pass_obj
def install(app: App, no_unit: bool, as_json: bool) -> None:
    """Make the spool and the channels file if missing, and start the systemd unit (root)."""
    from labshare.notify import install as setup

    def text(done: setup.Installed) -> str:
        lines = [f"spool: {done.spool_dir} (root, mode 1733)"]
        if done.channels_file:
            lines.append(
                f"channels: {done.channels_file} (root, mode 0600): list the lab's URLs there"
            )
        else:
            lines.append("channels: none; set [notify] channels_file in the site config")
        if done.unit:
            lines.append(f"service: {setup.UNIT} enabled and started ({done.unit})")
        lines += [f"made {path}" for path in done.made]
        return "\n".join(lines)

    emit(setup.install(app.paths.site_config, with_unit=not no_unit), as_json=as_json, text=text)


@notices.command()
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where the service keeps what it owes (default /var/lib/labshare/notice-service).",
)
@click.pass_obj
def serve(app: App, state_dir: str | None) -> None:
    """Send members' notices to the lab's channels, in the foreground, until stopped (root)."""
    import logging
    import os
    from pathlib import Path

    from labshare import config
    from labshare.errors import LabshareError
    from labshare.notify import service

    if os.geteuid() != 0:
        raise LabshareError(
            "The notices service reads the root-only channels file: run it as root "
            "(`sudo labshare admin notices serve`)."
        )
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("apprise").setLevel(logging.WARNING)  # one line per notice sent is noise
    site = config.load_site(app.paths.site_config).notify
    service.Service(site, Path(state_dir) if state_dir else service.DEFAULT_STATE_DIR).serve()
