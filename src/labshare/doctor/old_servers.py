"""Jupyter servers started by hand the old way, with no token: found, and stopped only when asked.

The lab's old guide said `jupyter lab --NotebookApp.token=''`; such a
server lets every account on the host run code as its owner.  They are
recognised by the monitor's reading of command lines (`monitor.argv`), so
`doctor` and `ps` always agree on what is a server (`jupyter lab build`
is not).  Stopping re-checks each pid is still the command line that was
shown, so a pid reused in between is never hit.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

import psutil

from labshare.doctor import FAIL, OK, Check, Report
from labshare.monitor import argv as cmd
from labshare.proc import end


@dataclass(frozen=True)
class OldServer:
    """A Jupyter started by hand with an empty token: anyone on this host can run code as its owner."""

    pid: int
    cmdline: str
    port: int | None


def tokenless_server(argv: list[str]) -> bool:
    """Whether `argv` serves Jupyter with the token turned off on its command line."""
    return cmd.server_kind(argv) is not None and cmd.token_required(cmd.options(argv)) is False


def _under_labshare(proc: psutil.Process) -> bool:
    try:
        return any(cmd.is_supervisor(parent.cmdline()) for parent in proc.parents())
    except psutil.Error:
        return False


def find_old_servers(uid: int) -> list[OldServer]:
    """This user's token-less Jupyter servers that labshare did not start (found by command line)."""
    found = []
    for proc in psutil.process_iter(["pid", "uids", "cmdline"]):
        try:
            uids, argv = proc.info["uids"], proc.info["cmdline"] or []
            if (
                uids is None
                or uids.real != uid
                or not tokenless_server(argv)
                or _under_labshare(proc)
            ):
                continue
            found.append(
                OldServer(
                    pid=proc.pid, cmdline=shlex.join(argv), port=cmd.listen_port(cmd.options(argv))
                )
            )
        except psutil.Error:
            continue
    return sorted(found, key=lambda s: s.pid)


def old_servers(found: list[OldServer]) -> Check:
    if not found:
        return Check("old-servers", OK, "no hand-started token-less Jupyter of yours is running")
    listed = "; ".join(
        f"pid {s.pid}" + (f" on port {s.port}" if s.port else "") + f": {s.cmdline[:120]}"
        for s in found
    )
    return Check(
        "old-servers",
        FAIL,
        f"{len(found)} Jupyter server(s) without a token: any account here can run code as you ({listed})",
        "labshare doctor --stop-old (asks first), then use `labshare start`",
    )


def stop_old(servers: list[OldServer], uid: int, grace: float = 10.0) -> list[int]:
    """End the given servers by pid (SIGTERM, then SIGKILL), re-checking each is still the one we found."""
    procs = []
    for s in servers:
        try:
            proc = psutil.Process(s.pid)
            if proc.uids().real == uid and shlex.join(proc.cmdline()) == s.cmdline:
                procs.append(proc)
        except psutil.Error:
            continue
    end(procs, grace)
    return [p.pid for p in procs]


def stop_and_recheck(report: Report, found: list[OldServer], uid: int) -> None:
    """Stop `found`, then look again, so the report shows what is left rather than what was."""
    report.stopped = stop_old(found, uid)
    fresh = old_servers(find_old_servers(uid))
    report.checks = [fresh if c.name == fresh.name else c for c in report.checks]
