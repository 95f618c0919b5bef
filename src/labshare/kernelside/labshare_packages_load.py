# Run by IPython at kernel start (`--IPKernelApp.exec_files=` in labshare's kernelspecs), in
# the member's namespace: so it binds no name for good, and a failure is a warning, never a
# kernel that does not start.  It loads labshare_packages.py, kept beside it, as an extension.
def _labshare_load_packages(here):
    import importlib.util
    import os
    import sys
    import warnings

    try:
        where = os.path.join(os.path.dirname(here), "labshare_packages.py")
        spec = importlib.util.spec_from_file_location("labshare_packages", where)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[spec.name] = module
        get_ipython().extension_manager.load_extension(spec.name)  # noqa: F821 (IPython's own)
    except Exception as exc:
        warnings.warn(
            f"labshare's %pip for uv was not loaded ({exc}); run `labshare start`, "
            "then restart this kernel.",
            stacklevel=1,
        )


try:
    _labshare_load_packages(__file__)
finally:
    del _labshare_load_packages
