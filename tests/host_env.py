"""The host's package index and trust store, as a login shell's profile passes them to every account.

Behind a TLS-inspecting proxy uv and pip fail without them, and labshare
runs uv on a member's first `start` (the default kernel).  Shared by the
tests' accounts and the benchmarks' isolated homes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

INDEX_AND_TRUST = (
    "UV_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_INDEX",
    "UV_NATIVE_TLS",
    "UV_SYSTEM_CERTS",
    "PIP_INDEX_URL",
    "PIP_CERT",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
)


def index_and_trust(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    return {key: environ[key] for key in INDEX_AND_TRUST if key in environ}
