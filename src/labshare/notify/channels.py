"""apprise, behind three calls: is this a URL it can send to, show it without its secrets, send.

apprise knows Slack, Teams, Discord, mail, ntfy, LINE's Messaging API,
Matrix and plain webhooks by their URLs, so labshare keeps no code per
service.  It is imported here only, and only by the processes that send:
never by a Jupyter server or a supervisor, which only write notices.
Plugins from the home directory and apprise's on-disk cache are turned
off: the root service must run only apprise's own code, and nothing of a
member's notices is kept anywhere else.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

TIMEOUT_HINT = "the channel did not take the notice"


@lru_cache(maxsize=1)
def _asset() -> Any:
    import apprise
    from apprise.common import PersistentStoreMode

    return apprise.AppriseAsset(plugin_paths=[], storage_mode=PersistentStoreMode.MEMORY)


def _plugin(url: str) -> Any:
    import apprise

    return apprise.Apprise.instantiate(url, asset=_asset(), suppress_exceptions=True)


def valid(url: str) -> bool:
    return _plugin(url) is not None


def redacted(url: str) -> str:
    """The URL with its passwords and tokens hidden (apprise's privacy form), for screens and logs."""
    plugin = _plugin(url)
    if plugin is None:
        return url.split(":", 1)[0] + "://…"
    hidden = urlsplit(str(plugin.url(privacy=True)))
    own = {key for key, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True)}
    kept = [(k, v) for k, v in parse_qsl(hidden.query, keep_blank_values=True) if k in own]
    return urlunsplit(hidden._replace(query=urlencode(kept)))  # only the options the member wrote


def send(url: str, title: str, body: str, severity: str = "info") -> str | None:
    """None once the channel took the notice; else apprise's last word on why not.

    `severity` is apprise's notice type by name (info, success, warning, failure).
    """
    import apprise

    plugin = _plugin(url)
    if plugin is None:
        return "not an apprise URL labshare can send to"
    kind = getattr(apprise.NotifyType, severity.upper(), apprise.NotifyType.INFO)
    with apprise.LogCapture(level=logging.WARNING) as captured:
        ok = plugin.notify(body=body, title=title, notify_type=kind)
    if ok:
        return None
    lines = [line for line in captured.getvalue().splitlines() if line.strip()]
    return lines[-1].split(" - ", 2)[-1] if lines else TIMEOUT_HINT


SELF_HOSTED = frozenset({"json", "jsons", "xml", "xmls", "form", "forms", "ntfy", "ntfys"})
MAIL = frozenset({"mailto", "mailtos"})


def endpoint(url: str) -> tuple[str, int] | None:
    """The host and port a channel's URL sends to, where that is a server one can dial (a webhook,
    a self-hosted ntfy, an SMTP server); None for a cloud service known by its token alone."""
    plugin = _plugin(url)
    scheme = url.split("://", 1)[0].lower()
    if plugin is None or scheme not in SELF_HOSTED | MAIL:
        return None
    secure = bool(getattr(plugin, "secure", False))
    if scheme in MAIL:
        host = getattr(plugin, "smtp_host", None) or getattr(plugin, "host", None)
        port = getattr(plugin, "port", None) or (465 if secure else 25)
    else:
        host = getattr(plugin, "host", None)
        if scheme.startswith("ntfy") and getattr(plugin, "mode", "") == "cloud":
            host, secure = "ntfy.sh", True
        port = getattr(plugin, "port", None) or (443 if secure else 80)
    return (str(host), int(port)) if host else None


def reachable(url: str, timeout: float = 3.0) -> str | None:
    """None when the channel's server answers a connection (or cannot be dialled: a cloud service);
    else why not, in a few words."""
    import socket

    where = endpoint(url)
    if where is None:
        return None
    try:
        with socket.create_connection(where, timeout=timeout):
            return None
    except OSError as exc:
        return f"{where[0]}:{where[1]} does not answer ({exc.strerror or exc})"
