"""`labshare fleet [GROUP]`: every server of a group, its cards and who holds them, asked at once."""

from __future__ import annotations

import click

from labshare.cli import App
from labshare.cli.options import json_option, ssh_option
from labshare.errors import ExitCode
from labshare.render import emit


@click.command()
@click.argument("group", required=False, metavar="[GROUP]")
@click.option(
    "--deadline",
    type=click.FloatRange(min=0.5),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="Show a server that has not answered by then as not answering.",
)
@ssh_option
@click.option(
    "--here",
    is_flag=True,
    hidden=True,
    help="Answer for this host (what the laptop's `fleet` runs on each server over ssh).",
)
@json_option
@click.pass_obj
def fleet(
    app: App,
    group: str | None,
    deadline: float,
    ssh_options: tuple[str, ...],
    here: bool,
    as_json: bool,
) -> ExitCode:
    """Show every server of GROUP: its GPUs, who holds them, what you could get, load, your server.

    GROUP is `lab` (the `[lab] servers` of your config or the site's) when
    left out, a name of your `[server_groups]`, or hosts separated by commas
    (`gpu1,gpu2`).  All servers are asked at once over your ssh; one that
    does not answer in time is shown as such.  Exits 4 when none answers.
    """
    if here:
        from labshare.fleet import here as this_host

        emit(this_host.answer(app.paths).to_json(), as_json=True)
        return ExitCode.OK
    from labshare.fleet import ask, report
    from labshare.fleet import group as groups
    from labshare.render import fleet as view

    chosen = groups.resolve(group, groups.known(app.paths.site_config, app.paths.user_config_file))
    replies = ask.ask_all(app.paths, chosen.hosts, deadline=deadline, ssh_options=ssh_options)
    result = report.build(chosen.name, replies)
    emit(result, as_json=as_json, text=view.report)
    return ExitCode.OK if any(r.reachable for r in replies) else ExitCode.UNREACHABLE
