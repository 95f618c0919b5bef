"""What every kernel labshare registers gets beside its own environment: labshare's uv, and a `%pip` that works.

The uv labshare runs sits in labshare's own environment, whose bin folder
also holds its jupyter and python: putting that folder on a kernel's PATH
would let `!jupyter` or `!python` run labshare's.  So each member gets a
folder of their own (in their XDG data folder, stable across labshare
upgrades) holding only links named `uv` and `uvx`, appended to every kernel's
PATH after the environment's own bin and the member's PATH, so a uv the
member has wins.  Beside it lies the kernel-side `%pip`
(`labshare/kernelside`), copied there because the kernel's environment has
no labshare in it and labshare's own install may move.

In a uv project the kernel also gets `UV_PROJECT` (and, where the
environment is not the project's `.venv`, `UV_PROJECT_ENVIRONMENT`), so
`!uv add X` from a notebook in any folder changes that project and installs
into the kernel's own environment, and `VIRTUAL_ENV` agrees with it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from labshare import xdg
from labshare.envs import uv
from labshare.envs.detect import UV_MANAGERS
from labshare.files import write_atomic

KERNEL_SIDE = Path(__file__).resolve().parent.parent / "kernelside"
EXTENSION = "labshare_packages.py"
LOADER = "labshare_packages_load.py"


@dataclass(frozen=True)
class KernelTools:
    """The member's folder of what labshare's kernels share: `bin` (uv, uvx only) and `ipython` (`%pip`)."""

    root: Path

    @classmethod
    def of(cls, data_home: Path) -> KernelTools:
        return cls(data_home / "labshare" / "kernel-tools")

    @classmethod
    def current(cls, environ: Mapping[str, str] | None = None) -> KernelTools:
        """Where this process's member keeps them (their XDG data folder)."""
        env = os.environ if environ is None else environ
        return cls.of(Path(xdg.base_dir(env, "XDG_DATA_HOME", ".local/share")))

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    @property
    def loader(self) -> Path:
        return self.root / "ipython" / LOADER

    def ensure(self) -> None:
        """Make or mend the links and the extension; cheap and safe to run before every registration."""
        real_uv = Path(uv.uv_bin())
        links = {"uv": real_uv}
        if (real_uv.parent / "uvx").is_file():
            links["uvx"] = real_uv.parent / "uvx"
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        for name, target in links.items():
            _ensure_link(self.bin_dir / name, target)
        for name in (EXTENSION, LOADER):
            text = (KERNEL_SIDE / name).read_text(encoding="utf-8")
            dest = self.loader.parent / name
            with contextlib.suppress(OSError):
                if dest.read_text(encoding="utf-8") == text:
                    continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(dest, text, mode=0o644)

    def kernel_env(self, project: Path, env: Path, manager: str) -> dict[str, str]:
        """What a kernel of `env` needs beyond VIRTUAL_ENV/PATH for uv to act on its own project."""
        if manager not in UV_MANAGERS or not (project / "pyproject.toml").is_file():
            return {}
        found = {"UV_PROJECT": str(project)}
        if os.path.realpath(env) != os.path.realpath(project / ".venv"):
            found["UV_PROJECT_ENVIRONMENT"] = str(env)
        return found

    def kernel_args(self) -> list[str]:
        """Appended to ipykernel's command line: load labshare's `%pip` (a missing file is a warning)."""
        return [f"--IPKernelApp.exec_files={self.loader}"]


def _ensure_link(link: Path, target: Path) -> None:
    """`link` -> `target`, replaced atomically when it points elsewhere."""
    with contextlib.suppress(OSError):
        if os.readlink(link) == str(target):
            return
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)
