"""`labshare doctor GROUP`: every server of a group, asked at once, as `fleet` asks them.

For each server: does it answer (the same words `fleet` shows, and the
sentence `connect` would say), which labshare it runs (the same version
everywhere keeps every server's answer readable), and does its site config
name the same group (`[lab] servers`), so a member logged in on one server
sees the others.  Names are compared as ssh host names, `user@` left out.
"""

from __future__ import annotations

from labshare import __version__
from labshare.connect.hosts import host_of
from labshare.doctor import FAIL, OK, WARN, Check
from labshare.fleet import ask, group
from labshare.install_hint import REMOTE_UPGRADE
from labshare.paths import Paths


def run_all(paths: Paths, name: str, ssh_options: tuple[str, ...] = ()) -> tuple[str, list[Check]]:
    chosen = group.resolve(name, group.known(paths.site_config, paths.user_config_file))
    replies = ask.ask_all(paths, chosen.hosts, ssh_options=ssh_options)
    checks = [
        Check("group", OK, f"{chosen.name} is {', '.join(chosen.hosts)} (from {chosen.source})")
    ]
    wanted = {host_of(h) for h in chosen.hosts}
    for reply in replies:
        checks += server_checks(reply, wanted)
    return chosen.name, checks


def server_checks(reply: ask.Reply, wanted: set[str]) -> list[Check]:
    host = reply.host
    if reply.answer is None:
        return [
            Check(
                f"{host}: answer",
                FAIL,
                f"{reply.error}: {reply.message}",
                f"labshare doctor {host}",
            )
        ]
    answer = reply.answer
    checks = [Check(f"{host}: answer", OK, f"answered in {reply.seconds:.2f} s as {answer.host}")]
    version = answer.labshare or "?"
    if version == __version__:
        checks.append(Check(f"{host}: labshare", OK, f"labshare {version}, as here"))
    else:
        checks.append(
            Check(
                f"{host}: labshare",
                WARN,
                f"labshare {version} there, {__version__} here",
                f"upgrade the older one ({REMOTE_UPGRADE} for a server)",
            )
        )
    servers = answer.lab_servers
    if servers is None:
        checks.append(
            Check(
                f"{host}: site group",
                WARN,
                "its site config has no `[lab] servers`, so members logged in there do not see the group",
                f"ask the admin to add `[lab] servers = [{', '.join(repr(h) for h in sorted(wanted))}]`",
            )
        )
    elif {host_of(s) for s in servers} != wanted:
        listed = ", ".join(servers) or "none"
        checks.append(
            Check(
                f"{host}: site group",
                FAIL,
                f"its site config's `[lab] servers` lists {listed}, not this group",
                "make `[lab] servers` the same on every server of the lab",
            )
        )
    else:
        checks.append(
            Check(f"{host}: site group", OK, "its `[lab] servers` names the same servers")
        )
    return checks
