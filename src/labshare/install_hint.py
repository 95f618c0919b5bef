"""How this labshare was installed, so every "install / upgrade / add an extra" message names a command that works.

labshare is not on a package index: `pip install labshare` or `uv tool install
labshare` would find nothing.  `scripts/install` writes a small record into the
environment it made (which checkout, which way, which extras), and every
message that tells a member how to reinstall, upgrade or add an extra asks
this module for the command, so the advice matches the install at hand.

Run by `scripts/install` too (`python -m labshare.install_hint record …`), so
the record's format lives in this one place.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

RECORD_NAME = "labshare-install.json"
RECORD_VERSION = 1
METHODS = ("venv", "system", "uv-tool", "pipx")
# Said on a host where labshare is missing: nothing there can tell where a checkout is.
REMOTE_INSTALL = (
    "copy or clone the labshare checkout to the server and run `sh scripts/install` in it"
)
REMOTE_UPGRADE = "run `sh scripts/install --upgrade` in the labshare checkout there"


@dataclass(frozen=True)
class InstallRecord:
    """What `scripts/install` did: `method` (one of METHODS), the checkout it ran from, and the extras."""

    method: str
    source: str
    extras: tuple[str, ...] = field(default_factory=tuple)
    version: int = RECORD_VERSION

    def to_json(self) -> dict[str, object]:
        return {
            "version": self.version,
            "method": self.method,
            "source": self.source,
            "extras": list(self.extras),
        }

    @classmethod
    def from_json(cls, data: object) -> InstallRecord | None:
        """The record, or None for one this labshare cannot read (then messages fall back to the generic command)."""
        if not isinstance(data, dict) or data.get("version") != RECORD_VERSION:
            return None
        method, source, extras = data.get("method"), data.get("source"), data.get("extras", [])
        if method not in METHODS or not isinstance(source, str) or not isinstance(extras, list):
            return None
        return cls(method=method, source=source, extras=tuple(str(e) for e in extras))

    @classmethod
    def read(cls, prefix: Path | None = None) -> InstallRecord | None:
        try:
            text = (Path(prefix or sys.prefix) / RECORD_NAME).read_text(encoding="utf-8")
            return cls.from_json(json.loads(text))
        except (OSError, ValueError):
            return None

    def write(self, prefix: Path) -> None:
        tmp = prefix / f".{RECORD_NAME}.{os.getpid()}"
        tmp.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o644)
        os.replace(tmp, prefix / RECORD_NAME)


def install_command(*extras: str, record: InstallRecord | None = None) -> str:
    """The command that reinstalls (upgrades) this labshare from its checkout, adding `extras` to those it has.

    Without a record (an install not made by `scripts/install`) the script's
    path is relative: the command is run in the labshare checkout.
    """
    wanted = dict.fromkeys([*(record.extras if record else ()), *extras])
    flags = " ".join(["--upgrade", *(f"--extra {e}" for e in wanted)])
    if record is None:
        return f"sh scripts/install {flags}"
    script = shlex.quote(str(Path(record.source) / "scripts" / "install"))
    if record.method == "system":
        return f"sudo sh {script} --system {flags}"
    return f"sh {script} {flags}"


def upgrade_command(*extras: str) -> str:
    """The command, as a doctor fix shows it: where the checkout is unknown, it says to run it there."""
    record = InstallRecord.read()
    command = install_command(*extras, record=record)
    return command if record else f"{command}  (in your labshare checkout)"


def reinstall_hint(*extras: str) -> str:
    """ "run `COMMAND`" for a sentence, saying where to run it when the checkout is not known."""
    record = InstallRecord.read()
    command = install_command(*extras, record=record)
    return f"run `{command}`" if record else f"run `{command}` in your labshare checkout"


def package_command(*requirements: str) -> str:
    """Installs `requirements` into labshare's own environment, with the uv it carries (it has no pip)."""
    python = shlex.quote(sys.executable)
    record = InstallRecord.read()
    sudo = "sudo " if record and record.method == "system" else ""
    return f"{sudo}{python} -m uv pip install --python {python} " + " ".join(
        shlex.quote(r) for r in requirements
    )


def main(argv: Sequence[str]) -> int:
    """`record PREFIX METHOD SOURCE [EXTRAS]` writes the record; `extras PREFIX` prints the recorded extras."""
    if len(argv) >= 4 and argv[0] == "record" and argv[2] in METHODS:
        extras = tuple(e for e in (argv[4] if len(argv) > 4 else "").split(",") if e)
        InstallRecord(method=argv[2], source=argv[3], extras=extras).write(Path(argv[1]))
        return 0
    if len(argv) == 2 and argv[0] == "extras":
        record = InstallRecord.read(Path(argv[1]))
        print(",".join(record.extras) if record else "")
        return 0
    print(
        "usage: python -m labshare.install_hint record PREFIX METHOD SOURCE [EXTRAS] | extras PREFIX",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
