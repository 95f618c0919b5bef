"""What `scripts/install --uninstall` removes, worked out by labshare itself so the paths are the ones it uses.

The shell script finds the install and asks the member; this module lists
(`plan`) and removes (`remove`) everything else labshare made for them: the
links into its install, its state (server state, logs, sockets, tokens,
kernel records, the laptop's memory of servers), the default kernel's
environment, and the kernelspecs that carry `metadata.labshare`.  It never
touches a project folder, a notebook, a kernelspec without that metadata, or
the member's own config.  The install itself (a venv, a uv tool or a pipx
environment) is removed last by the script, with the tool that made it.

    python -m labshare.uninstall plan|remove --prefix PREFIX --method venv|system|uv-tool|pipx
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from labshare.errors import LabshareError
from labshare.gpus.gate import MODULE as GATE_MODULE
from labshare.paths import Paths

# What `scripts/install` links beside `labshare` (uv and uvx only where the member had no uv);
# a uv tool or pipx install's own `labshare` link is left to that tool's uninstall.
LINKED = {
    "venv": ("labshare", "uv", "uvx"),
    "system": ("labshare", "uv", "uvx"),
    "uv-tool": ("uv", "uvx"),
    "pipx": ("uv", "uvx"),
    # a member's own part of the install for everyone: their account's things, not /opt's
    "shared": ("labshare", "uv", "uvx"),
}
SYSTEM_BIN = Path("/usr/local/bin")


@dataclass(frozen=True)
class Removal:
    """One thing to remove, with what it is in words the member knows."""

    what: str
    path: Path


def _inside(path: Path, prefix: Path) -> bool:
    return os.path.realpath(path).startswith(os.path.realpath(prefix) + os.sep)


def links(bindir: Path, prefix: Path, method: str) -> list[Removal]:
    """The links in `bindir` that point into labshare's install: only those the installer can have made."""
    return [
        Removal("link", bindir / name)
        for name in LINKED[method]
        if (bindir / name).is_symlink() and _inside(bindir / name, prefix)
    ]


def kernelspecs(kernels_dir: Path) -> list[Removal]:
    """The member's kernelspecs labshare wrote (they carry `metadata.labshare`); hand-made ones stay."""
    from labshare.envs.specfiles import labshare_meta, read_spec, spec_dirs

    return [
        Removal("kernelspec", d)
        for d in spec_dirs(kernels_dir)
        if labshare_meta(read_spec(d)) is not None
    ]


def member_plan(paths: Paths, prefix: Path, method: str, kernels_dir: Path) -> list[Removal]:
    """Everything of labshare's in this member's account, the install excepted.

    labshare's data folder holds only what labshare made (the default kernel's
    environment, the tools its kernels get, a venv install), so all of it goes.
    """
    from labshare.envs import default

    found = links(paths.home / ".local" / "bin", prefix, method)
    found += kernelspecs(kernels_dir)
    places = [
        Removal("state, logs, sockets and tokens", paths.state_root),
        Removal("socket folder", paths.fallback_socket.parent),
    ]
    found += [p for p in places if p.path.exists() or p.path.is_symlink()]
    data = paths.data_home / "labshare"
    envs = default.env_dir(paths.data_home).parent
    children = sorted(data.iterdir()) if data.is_dir() else []
    return found + [
        Removal("default kernel's environment" if c == envs else "labshare's data", c)
        for c in children
        if os.path.realpath(c) != os.path.realpath(prefix)
    ]


def running_from(prefix: Path) -> list[str]:
    """`user (pid)` for every process that runs labshare's install at `prefix`: the servers of members."""
    import psutil

    # By the path it was started as: a venv's python is a link to the system's, so its exe is not under prefix.
    inside = os.path.abspath(prefix) + os.sep
    found = []
    for proc in psutil.process_iter(["pid", "username", "cmdline"]):
        argv0 = (proc.info["cmdline"] or [""])[0]
        watcher = GATE_MODULE in (
            proc.info["cmdline"] or []
        )  # a gated kernel's: it ends with the kernel
        if (
            os.path.isabs(argv0)
            and argv0.startswith(inside)
            and proc.pid != os.getpid()
            and not watcher
        ):
            found.append(f"{proc.info['username']} ({proc.info['pid']})")
    return found


def plan(prefix: Path, method: str) -> list[Removal]:
    if method == "system":
        return links(SYSTEM_BIN, prefix, method)
    from labshare.envs.kernels import KernelPlaces

    return member_plan(Paths.from_env(), prefix, method, KernelPlaces.current().user)


def stop_server(prefix: Path) -> None:
    """The member's server, stopped by labshare's own `stop` so its kernels end cleanly first."""
    done = subprocess.run(
        [str(prefix / "bin" / "labshare"), "stop"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise LabshareError(
            f"`labshare stop` failed, so nothing was removed ({done.stderr.strip()}); "
            "stop the server, then run this again"
        )


def remove(prefix: Path, method: str) -> None:
    """Stop the member's server (the system install: refuse while any runs from it), then remove the plan."""
    from labshare.envs.specfiles import remove_spec

    if method == "system":
        users = running_from(prefix)
        if users:
            raise LabshareError(
                f"labshare still runs from {prefix} for {', '.join(users)}; "
                "stop those servers (`labshare admin stop NAME`), then run this again"
            )
    else:
        stop_server(prefix)
    for item in plan(prefix, method):
        try:
            if item.what == "kernelspec":
                remove_spec(item.path)
            elif item.path.is_symlink() or not item.path.is_dir():
                item.path.unlink(missing_ok=True)
            else:
                shutil.rmtree(item.path)
        except OSError as exc:
            raise LabshareError(
                f"could not remove {item.path} ({exc.strerror}); remove it by hand, "
                "then run this again to remove the rest"
            ) from exc


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m labshare.uninstall")
    parser.add_argument("action", choices=("plan", "remove"))
    parser.add_argument("--prefix", type=Path, default=Path(sys.prefix))
    parser.add_argument("--method", choices=sorted(LINKED), required=True)
    args = parser.parse_args(argv)
    try:
        if args.action == "plan":
            for item in plan(args.prefix, args.method):
                print(f"  {item.path}  ({item.what})")
        else:
            remove(args.prefix, args.method)
    except LabshareError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
