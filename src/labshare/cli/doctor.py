"""`labshare doctor [HOST]`: check this server, or from the laptop, the way to HOST."""

from __future__ import annotations

import os

import click

from labshare.cli import App
from labshare.cli.options import confirm, json_option, ssh_option, yes_option
from labshare.errors import ExitCode
from labshare.render import emit, note


@click.command()
@click.argument("host", required=False, metavar="[HOST|GROUP]")
@click.option(
    "--stop-old",
    is_flag=True,
    help="Offer to stop your hand-started Jupyter servers that have no token (asks first).",
)
@ssh_option
@click.option(
    "--serve-test-socket",
    is_flag=True,
    hidden=True,
    help="Hold a throwaway socket for the laptop's tunnel test (run by `labshare doctor HOST`).",
)
@yes_option
@json_option
@click.pass_obj
def doctor(
    app: App,
    host: str | None,
    stop_old: bool,
    ssh_options: tuple[str, ...],
    serve_test_socket: bool,
    yes: bool,
    as_json: bool,
) -> ExitCode:
    """Check what labshare needs and say how to fix what is wrong.

    On the server: versions, private directories, logout, sshd forwarding, uv,
    kernels, GPUs, site policy and old token-less Jupyter servers.
    On the laptop, `labshare doctor HOST`: ssh, labshare on HOST, a test
    tunnel and the browser; `labshare doctor GROUP`: every server of the
    group answers, its labshare version, and its site config names the
    same group.  Exits 1 when a check fails.
    """
    from labshare.doctor import Report
    from labshare.render import doctor as view

    if serve_test_socket:
        from labshare.doctor import remote

        remote.serve_test_socket(app.paths, lambda path: click.echo(str(path)))
        return ExitCode.OK
    if host and "@" not in host and _is_group(app, host):
        from labshare.doctor import fleet

        name, group_checks = fleet.run_all(app.paths, host, ssh_options)
        report = Report(host=name, side="group", checks=group_checks)
    elif host:
        from labshare.doctor import remote

        report = Report(
            host=host, side="laptop", checks=remote.run_all(app.paths, host, ssh_options)
        )
    else:
        import socket

        from labshare.doctor import checks, old_servers

        report = Report(
            host=socket.gethostname(), side="server", checks=checks.run_all(app.paths, os.environ)
        )
        if stop_old:
            found = old_servers.find_old_servers(app.paths.uid)
            if found:
                pids = ", ".join(str(s.pid) for s in found)
                if confirm(f"Stop your token-less Jupyter server(s) with pid {pids}?", yes):
                    old_servers.stop_and_recheck(report, found, app.paths.uid)
            elif not as_json:
                note("No old token-less Jupyter server to stop.")
    emit(report, as_json=as_json, text=view.report)
    return ExitCode.FAILED if report.failed else ExitCode.OK


def _is_group(app: App, name: str) -> bool:
    from labshare.fleet import pick

    return pick.is_group(app.paths, name)
