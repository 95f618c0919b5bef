"""The launcher's former name, for servers started before the in-Jupyter code moved to `jupyterside/`.

A running supervisor restarts Jupyter from the command line it read from
`launch.json` when it started, so one started by an earlier labshare runs
`python -m labshare.server.lab` with classes and extensions named under
`labshare.server.`, whatever labshare is installed by then.  Upgrading
labshare under a running server must not break its next restart: this
module translates that command line to today's names and runs the
launcher (the GPU policy's former `allowed` is read by `GpuPolicy` itself).
`labshare start` never names it; once every server on a host has been
started by this labshare or a later one, delete it with its line in
`monitor/argv.py`.
"""

from __future__ import annotations

import sys

from labshare.jupyterside import lab

MOVED = ("survive", "kernelspecs", "outputs_keeper", "reclaim", "execution_clients")


def renamed(arg: str) -> str:
    """`arg` as this labshare names it: each moved module's new dotted name."""
    for module in MOVED:
        arg = arg.replace(f"labshare.server.{module}", f"labshare.jupyterside.{module}")
    return arg


if __name__ == "__main__":
    sys.argv[1:] = [renamed(a) for a in sys.argv[1:]]
    lab.main()
