"""The Jupyter command line and environment for a member's server.

Secure choices live here, in one place: a Unix socket (0600) by default or
127.0.0.1 with `port_retries=0`; modern `ServerApp`/`IdentityProvider`
names; the token only ever in the environment (`JUPYTER_TOKEN`, added by
the supervisor from the 0600 token file), never in argv.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from labshare.config import Limits, ServerPolicy
from labshare.envs import uv
from labshare.errors import LabshareError
from labshare.gpus import assign
from labshare.gpus.assign import GpuPolicy
from labshare.install_hint import reinstall_hint

LAUNCHER = "labshare.jupyterside.lab"  # a string: the CLI side never imports the code that runs inside Jupyter


def find_jupyter_lab(path_env: str | None = None) -> list[str]:
    """The command that starts JupyterLab: labshare's own environment first, so the tested version runs.

    There it is started through `jupyterside/lab.py`, which starts faster; a
    `jupyter-lab` found only on PATH belongs to another environment and is
    run as it is.
    """
    sibling = Path(sys.executable).parent / "jupyter-lab"
    if sibling.is_file() and os.access(sibling, os.X_OK):
        return [sys.executable, "-m", LAUNCHER]
    found = shutil.which(
        "jupyter-lab", path=path_env if path_env is not None else os.environ.get("PATH")
    )
    if found:
        return [found]
    raise LabshareError(
        "JupyterLab was not found (no jupyter-lab next to labshare's Python or on PATH); "
        f"reinstall labshare: {reinstall_hint()}."
    )


def jupyter_argv(
    jupyter: list[str],
    *,
    root_dir: Path,
    socket: Path | None,
    port: int | None,
    extra: list[str] | None = None,
) -> list[str]:
    argv = [*jupyter, "--no-browser", f"--ServerApp.root_dir={root_dir}"]
    if socket is not None:
        argv += [f"--ServerApp.sock={socket}", "--ServerApp.sock_mode=0600"]
    else:
        argv += [
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
        ]
    if hasattr(os, "getuid") and os.getuid() == 0:
        argv.append("--ServerApp.allow_root=True")
    return argv + list(extra or [])


def member_args() -> list[str]:
    """Nothing a member does in Lab changes labshare's own environment, the one JupyterLab runs from.

    No kernel runs there (see `kernelspecs`), and Lab's extension manager lists
    extensions without installing any (it would pip-install into that environment).
    """
    return [
        "--ServerApp.kernel_spec_manager_class=labshare.jupyterside.kernelspecs.MemberKernelSpecManager",
        "--KernelSpecManager.ensure_native_kernel=False",
        "--LabApp.extension_manager=readonly",
    ]


def policy_args(policy: ServerPolicy, gpus: GpuPolicy) -> list[str]:
    """Idle culling from the site policy, in Jupyter's own option names (off unless the admin sets it),
    and the GPU policy labshare's kernel manager and provisioner apply to each kernel."""
    args = [
        f"--{cls}.gpu_policy={gpus.to_json()}"
        for cls in ("LabshareKernelManager", "LabshareProvisioner")
    ]
    if policy.cull_idle_kernels_after:
        timeout = max(1, int(policy.cull_idle_kernels_after))
        args += [
            f"--MappingKernelManager.cull_idle_timeout={timeout}",
            f"--MappingKernelManager.cull_interval={max(1, min(300, timeout // 2))}",
            f"--MappingKernelManager.cull_busy={policy.cull_busy_kernels}",
        ]
    if policy.shutdown_idle_server_after:
        args.append(
            f"--ServerApp.shutdown_no_activity_timeout={max(1, int(policy.shutdown_idle_server_after))}"
        )
    return args


def policy_env(gpus: GpuPolicy) -> dict[str, str]:
    """GPUs the admin gave this member, by UUID; kernels inherit the server's environment."""
    return assign.server_env(gpus)


def tools_env(environ: Mapping[str, str], uv_dir: Path) -> dict[str, str]:
    """What a Lab terminal and the kernels need to run uv as the member expects.

    PATH gets the member's uv-only folder last, where PATH has no uv, so
    `uv add` works in a terminal; uv trusts the system's certificates.
    """
    found = uv.system_trust(environ)
    path = environ.get("PATH", os.defpath)
    if not shutil.which("uv", path=path):
        found["PATH"] = f"{path}{os.pathsep}{uv_dir}" if path else str(uv_dir)
    return found


def systemd_user_manager(environ: Mapping[str, str]) -> bool:
    runtime = environ.get("XDG_RUNTIME_DIR")
    if not runtime:
        return False
    return (Path(runtime) / "systemd" / "private").exists() and bool(shutil.which("systemd-run"))


def limit_prefix(limits: Limits, environ: Mapping[str, str]) -> list[str] | None:
    """`systemd-run --user --scope` with the member's memory and CPU caps, or None where it cannot be done."""
    if limits.memory_max is None and limits.cpus is None:
        return []
    if not systemd_user_manager(environ):
        return None
    argv = ["systemd-run", "--user", "--scope", "--quiet", "--collect"]
    if limits.memory_max is not None:
        argv += ["-p", f"MemoryMax={limits.memory_max}"]
    if limits.cpus is not None:
        argv += ["-p", f"CPUQuota={int(limits.cpus * 100)}%"]
    return argv + ["--"]
