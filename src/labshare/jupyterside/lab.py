"""`python -m labshare.jupyterside.lab`: `jupyter-lab` as labshare starts it, less one import no Jupyter part uses.

jupyter-events asks for `jsonschema[format-nongpl]`, which installs
rfc3987-syntax, and jsonschema imports it whenever it is there to check the
`iri` formats.  That import compiles about forty Lark grammars: 0.8 s of
CPU, close to half of a server's start, paid again on every restart and
every crash recovery (jupyter_server#1559).  No Jupyter event, settings or
notebook schema uses an `iri` format, so the server process goes without
it: jsonschema then skips those two formats and checks every other one.
Nor does it run Node.js to ask yarn for an npm registry it never uses
(`internals.skip_yarn_config`).  Only this process is changed; kernels and
terminals start their own interpreters with nothing of this.  `ps` knows this module by its name
(monitor/argv.py reads `__name__` here), so it is a Lab server there too.
"""

from __future__ import annotations

import sys


def trim_start() -> None:
    """What every Lab server process of labshare's goes without; see above and `internals.skip_yarn_config`."""
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]  # None: importing it fails at once
    from labshare.jupyterside import internals

    internals.skip_yarn_config()


def main() -> None:
    trim_start()
    from jupyterlab.labapp import main as lab_main

    sys.exit(lab_main())


if __name__ == "__main__":
    main()
