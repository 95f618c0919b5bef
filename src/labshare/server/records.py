"""Records of the member's surviving kernels, readable without importing Jupyter.

`survive` (inside the Jupyter process) writes them; `status`, `stop` and
`ps` read them.  Each holds a kernel's HMAC key, so they live in the 0700
state directory as 0600 files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

KEEP_MARKER = "keep-kernels"
PROVISIONER_NAME = "labshare-provisioner"


def record_path(records_dir: str | Path, kernel_id: str) -> Path:
    return Path(records_dir) / f"{kernel_id}.json"


def read_records(records_dir: str | Path) -> list[dict[str, Any]]:
    found = []
    for path in sorted(Path(records_dir).glob("*.json")):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return found


def jupyter_args(records_dir: Path, sessions_db: Path) -> list[str]:
    """The options that give a labshare server kernels which survive it."""
    return [
        "--ServerApp.kernel_manager_class=labshare.server.survive.LabshareKernelManager",
        f"--LabshareKernelManager.records_dir={records_dir}",
        f"--LabshareProvisioner.records_dir={records_dir}",
        f"--KernelProvisionerFactory.default_provisioner_name={PROVISIONER_NAME}",
        f"--SessionManager.database_filepath={sessions_db}",
    ]
