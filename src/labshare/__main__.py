"""The `labshare` command (and `python -m labshare`).

Before anything heavy is imported, `connect` gets the chance to start its
ssh login (connect/dial.py), so the login and Python's imports overlap.
"""

from __future__ import annotations

import sys

from labshare.errors import ExitCode


def main() -> None:
    try:
        if sys.argv[1:2] == ["connect"]:
            from labshare.connect import dial

            dial.start(sys.argv[2:])
        from labshare.cli import main as cli_main
    except KeyboardInterrupt:  # Ctrl-C before the CLI could catch it: no traceback
        sys.exit(ExitCode.INTERRUPTED)
    cli_main()


if __name__ == "__main__":
    main()
