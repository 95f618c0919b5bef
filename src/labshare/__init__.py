"""labshare: a secure, always-on JupyterLab per lab member on a shared server."""

__version__ = "0.1.0"
