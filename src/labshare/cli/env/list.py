"""`labshare env list`: every kernel Jupyter would offer, so stale and shadowed ones show."""

from __future__ import annotations

import click

from labshare.cli import App
from labshare.cli.options import json_option
from labshare.render import emit
from labshare.render import envs as view


@click.command("list")
@json_option
@click.pass_obj
def list_(app: App, as_json: bool) -> None:
    """Every kernel Jupyter would show you, marked ok, stale, duplicate label or shadowed."""
    from labshare.envs import kernels

    emit(kernels.list_kernels(kernels.KernelPlaces.current()), as_json=as_json, text=view.listing)
