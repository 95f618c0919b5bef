"""Output keeping: the Jupyter options that run cells on the server side.

With stock JupyterLab the browser runs a cell and writes its output, so
whatever a cell prints while no tab is connected is lost.  With
jupyter-collaboration (the notebook lives in the server as a shared
document) and jupyter-server-nbmodel (the server executes the cell and
writes outputs into that document), output lands in the server's copy and
on disk whether or not a browser is there.

Two stock defaults break that and are changed here: the shared document is
dropped 60 s after the last tab closes, and nbmodel then writes into the
dropped copy; and a save waits for 1 s of quiet, so a cell printing every
second never reaches disk.  `outputs_keeper` (an extension of ours inside
Jupyter) frees documents safely instead and saves at least every few
seconds.  This module imports nothing of Jupyter: `start` builds argv with it.
"""

from __future__ import annotations

from pathlib import Path

KEEPER = "labshare.jupyterside.outputs_keeper"
YSTORE_SQUASH_SECONDS = 3600


def _extensions(**enabled: bool) -> list[str]:
    return [f"--ServerApp.jpserver_extensions={name}={value}" for name, value in enabled.items()]


def jupyter_args(keep: bool, state_dir: Path) -> list[str]:
    """Options for a server that keeps outputs (`keep`) or behaves like stock JupyterLab."""
    if not keep:
        return _extensions(
            jupyter_server_ydoc=False, jupyter_server_nbmodel=False, **{KEEPER: True}
        ) + [
            "--OutputKeeper.keep=False",
        ]
    return _extensions(
        jupyter_server_fileid=True,
        jupyter_server_ydoc=True,
        jupyter_server_nbmodel=True,
        **{KEEPER: True},
    ) + [
        "--OutputKeeper.keep=True",
        "--YDocExtension.document_cleanup_delay=None",
        f"--YDocExtension.session_store_path={state_dir / 'collaboration_sessions.json'}",
        f"--SQLiteYStore.db_path={state_dir / 'ystore.db'}",
        f"--SQLiteYStore.squash_after_inactivity_of={YSTORE_SQUASH_SECONDS}",
    ]
