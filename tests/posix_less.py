"""A labshare whose Python cannot import the Unix-only modules, as on a Windows laptop.

Windows' Python has no `pwd`, `grp`, `fcntl`, `termios` or `resource`; a
`sitecustomize` on PYTHONPATH refuses them here, so the laptop's side of
`connect` and `doctor HOST` runs on Linux as it must on Windows.  Only the
member given is affected: ssh does not pass PYTHONPATH on, so the server
side runs as usual.
"""

from __future__ import annotations

from conftest import BIN, Member

REFUSED = ("pwd", "grp", "fcntl", "termios", "resource")
SITECUSTOMIZE = f"""
import sys

REFUSED = {set(REFUSED)!r}


class Refuse:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name in REFUSED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (refused: as on Windows)", name=name)
        return None


for name in REFUSED:
    sys.modules.pop(name, None)
sys.meta_path.insert(0, Refuse)
"""


def refuse_posix_modules(member: Member) -> None:
    """From now on `member`'s labshare runs where the Unix-only modules cannot be imported (checked)."""
    site = member.home / "refuse-posix"
    site.mkdir(mode=0o755)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    member.extra_env["PYTHONPATH"] = str(site)
    for module in REFUSED:
        done = member.run_cmd([str(BIN / "python"), "-c", f"import {module}"], timeout=60)
        assert done.returncode != 0 and "refused" in done.stderr, (module, done.stderr)
