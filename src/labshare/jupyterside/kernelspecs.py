"""The kernels a member's server offers: every kernelspec Jupyter finds, less labshare's own.

labshare's environment holds JupyterLab itself; a kernel running there would
let `%pip install` change the tool under the member's feet.  Jupyter offers
that kernel twice over, as the `python3` copy in the environment's kernels
folder and as jupyter_client's built-in fallback for the name `python3`.
This manager, loaded inside Jupyter through `ServerApp.kernel_spec_manager_class`,
drops both (`envs.kernels.own_kernel_dirs` says where they are), so the
member's own `python3` (`envs.default`) is the only one by that name.
"""

from __future__ import annotations

from pathlib import Path

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager, NoSuchKernel

from labshare.envs.kernels import is_own


class MemberKernelSpecManager(KernelSpecManager):
    """Jupyter's own manager, searching every kernels folder but labshare's."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.kernel_dirs = [d for d in self.kernel_dirs if not is_own(Path(d))]

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        spec = super().get_kernel_spec(kernel_name)
        if is_own(
            Path(spec.resource_dir)
        ):  # jupyter_client falls back to ipykernel's python3 by name
            raise NoSuchKernel(kernel_name)
        return spec
