"""Text face of `labshare connect`: one line per event, on stderr except the URL."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the view only reads attributes; render sits below connect
    from labshare.connect.session import Manual


def event_line(event: dict[str, Any]) -> str | None:
    """The line a person reads for `event`; None for events too small to mention."""
    kind = event["event"]
    host = event.get("host", "")
    if kind == "connecting":
        # ssh is already logging in and may be showing a password prompt: a line now would land in it
        return None if event.get("login_started") else f"Connecting to {event['destination']} ..."
    if kind == "note":
        return f"note: {event['message']}"
    if kind == "chosen":
        return f"Connecting to {host} of {event['group']}: {event['reason']}."
    if kind == "starting":
        return f"JupyterLab is not running on {host}; starting it ..."
    if kind == "started":
        return f"JupyterLab started on {host}."
    if kind == "ready":
        if event.get("browser"):
            return (
                f"JupyterLab on {host} is open in your browser at {event['url_without_token']}\n"
                "Keep this running; press Ctrl-C to close the tunnel (JupyterLab keeps running)."
            )
        return (
            f"JupyterLab on {host} is ready; open this URL in your browser:\n  {event['url']}\n"
            "Keep this running; press Ctrl-C to close the tunnel (JupyterLab keeps running)."
        )
    if kind == "reconnecting":
        return f"Lost the tunnel to {host} ({event['reason']}); reconnecting ..."
    if kind == "retry":
        return (
            f"Still reconnecting to {host} ({event['reason']}); next try in {event['next_in']:g} s."
        )
    if kind == "server_gone":
        action = (
            "starting it again"
            if event.get("will_start")
            else "waiting for `labshare start` there (or use --start)"
        )
        return f"JupyterLab is no longer running on {host}; {action}."
    if kind == "reconnected":
        return f"Reconnected to {host} after {event['downtime_s']:.1f} s; the same browser tab keeps working."
    if kind == "closed":
        return f"Tunnel to {host} closed; JupyterLab keeps running there."
    return None


def manual(m: Manual) -> str:
    return "\n".join(
        [
            "Without labshare on this computer, run:",
            f"  {m.command}",
            f"then open {m.url} and {m.token_hint}.",
        ]
    )
