"""Records of the member's surviving kernels, readable without importing Jupyter.

`survive` (inside the Jupyter process) writes them; `status`, `stop` and
`ps` read them.  Each holds a kernel's HMAC key, so they live in the 0700
state directory as 0600 files, and forgetting a kernel removes its
connection file (the same key) with its record.  Their format is
`records.server.KernelRecord`; one that cannot be read is skipped, as a
kernel nobody can re-adopt, and left in place: root reads them too (`ps`).
"""

from __future__ import annotations

import json
from pathlib import Path

from labshare.files import remove
from labshare.paths import Paths
from labshare.records import RecordError
from labshare.records.server import KernelRecord
from labshare.records.store import Store
from labshare.server.state import alive

PROVISIONER_NAME = "labshare-provisioner"


def record_path(records_dir: str | Path, kernel_id: str) -> Path:
    return Path(records_dir) / f"{kernel_id}.json"


def _store(path: Path) -> Store[KernelRecord]:
    return Store(path, KernelRecord, "the kernel record")


def write_record(records_dir: str | Path, record: KernelRecord) -> None:
    _store(record_path(records_dir, record.kernel_id)).write(record)


def read_records(records_dir: str | Path) -> list[KernelRecord]:
    found = []
    for path in sorted(Path(records_dir).glob("*.json")):
        try:
            found.append(
                KernelRecord.from_json(json.loads(path.read_text()), f"the kernel record {path}")
            )
        except (OSError, ValueError, RecordError):
            continue
    return found


def running(record: KernelRecord) -> bool:
    """Whether the recorded kernel process is still the one that was recorded (pids get reused)."""
    return alive(record.pid, record.started)


def living(records_dir: str | Path) -> list[KernelRecord]:
    return [r for r in read_records(records_dir) if running(r)]


def drop(records_dir: str | Path, record: KernelRecord) -> None:
    """Forget a kernel: its record and its connection file, so its key is nowhere left on disk."""
    remove(record_path(records_dir, record.kernel_id))
    if record.connection_file:
        remove(Path(record.connection_file))


def jupyter_args(paths: Paths) -> list[str]:
    """The options that give a labshare server kernels which survive it, idle GPUs reclaimed, and notices."""
    records_dir = paths.kernel_records_dir
    return [
        "--ServerApp.kernel_manager_class=labshare.jupyterside.survive.LabshareKernelManager",
        f"--LabshareKernelManager.records_dir={records_dir}",
        f"--LabshareKernelManager.keep_marker={paths.keep_kernels_marker}",
        f"--LabshareProvisioner.records_dir={records_dir}",
        f"--KernelProvisionerFactory.default_provisioner_name={PROVISIONER_NAME}",
        f"--SessionManager.database_filepath={paths.sessions_db}",
        "--ServerApp.jpserver_extensions=labshare.jupyterside.reclaim=True",
        "--ServerApp.jpserver_extensions=labshare.jupyterside.cell_notices=True",
        f"--GpuReclaimer.state_dir={paths.state_dir}",
    ]
