"""`labshare start`: the member's JupyterLab, started once and kept running after logout."""

from __future__ import annotations

from pathlib import Path

import click

from labshare.cli import App
from labshare.cli.options import json_option
from labshare.render import emit
from labshare.render import server as view


@click.command()
@click.option(
    "--dir",
    "root_dir",
    type=click.Path(path_type=Path),
    help="Folder the file browser shows [default: ~/projects, created if missing].",
)
@click.option(
    "--tcp", is_flag=True, help="Listen on 127.0.0.1:PORT instead of a private Unix socket."
)
@click.option("--port", type=int, help="TCP port to listen on (implies --tcp).")
@click.option(
    "--keep-outputs/--no-keep-outputs",
    default=None,
    help="Run cells on the server so output printed while no browser is open is kept "
    "[default: on, or the site policy].",
)
@click.option(
    "--timeout", default=120.0, show_default=True, help="Seconds to wait for Jupyter to answer."
)
@json_option
@click.pass_obj
def start(
    app: App,
    root_dir: Path | None,
    tcp: bool,
    port: int | None,
    keep_outputs: bool | None,
    timeout: float,
    as_json: bool,
) -> None:
    """Start your JupyterLab in the background; it keeps running after you log out.

    Returns once the server answers, then shows how to reach it from your laptop.
    A second `start` while one runs just shows the running one.
    """
    from labshare.server import lifecycle

    result = lifecycle.start(
        app.paths, root_dir=root_dir, tcp=tcp, port=port, timeout=timeout, keep_outputs=keep_outputs
    )
    emit(result, as_json=as_json, text=view.started)
