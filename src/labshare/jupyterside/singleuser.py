"""`python -m labshare.jupyterside.singleuser`: JupyterHub's single-user server as labshare runs it.

`labshare singleuser` (server/hubside.py) decides the options and execs
this module, so the process the hub's spawner watches is Jupyter itself.
It is `jupyterhub-singleuser` (the hub's login, activity and proxy prefix)
less what `lab.py` also skips; `ps` knows it by this module's name
(monitor/argv.py), as a Lab server started by JupyterHub.
"""

from __future__ import annotations

import sys

from labshare.jupyterside.lab import trim_start


def main() -> None:
    trim_start()
    from jupyterhub.singleuser import main as singleuser_main

    sys.exit(singleuser_main())


if __name__ == "__main__":
    main()
