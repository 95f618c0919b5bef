"""What an ssh failure means, as the one sentence `connect` and `doctor` both say.

ssh reports every failure as exit code 255 and a line of English on stderr;
the sign tables below map those lines to the few kinds a member can act on
(host key, login, network, local port), each its own `LabshareError`
subclass, so a healing loop decides by kind and a doctor check quotes the
same sentence `connect` would have printed.  A refused forward is not read
from ssh's words (the member's `LogLevel` may hide them) but from the tunnel
itself (tunnel.answer); its sentence is here all the same.
"""

from __future__ import annotations

from labshare.connect.hosts import host_of
from labshare.errors import (
    AuthFailed,
    ForwardingRefused,
    HostUnreachable,
    LabshareError,
    LocalPortTaken,
)
from labshare.proc import tail

UNREACHABLE_SIGNS = (
    "Could not resolve hostname",
    "Connection refused",
    "Connection timed out",
    "No route to host",
    "Network is unreachable",
    "Operation timed out",
    "Connection reset",
    "kex_exchange_identification",
    "Connection closed by remote host",
    "timed out during banner exchange",
)
AUTH_SIGNS = ("Permission denied", "Too many authentication failures", "Authentication failed")
HOSTKEY_SIGNS = (
    "Host key verification failed",
    "REMOTE HOST IDENTIFICATION HAS CHANGED",
    "No ED25519 host key is known",
    "host key is known for",
)
LOCAL_PORT_SIGNS = ("Address already in use", "cannot listen to port")


def classify_ssh_failure(stderr: str, destination: str) -> LabshareError:
    """Turn what ssh printed when it gave up into one sentence that says what to do."""
    host = host_of(destination)
    last = (stderr.strip().splitlines() or ["no message"])[-1].strip()
    if any(s in stderr for s in HOSTKEY_SIGNS):
        return LabshareError(
            f"ssh refused {host} because its host key is unknown or has changed; verify the key and fix "
            "~/.ssh/known_hosts (for example by running `ssh " + destination + "` once), "
            "since labshare never skips this check.",
            detail=tail(stderr),
        )
    if any(s in stderr for s in AUTH_SIGNS):
        return AuthFailed(
            f"ssh could not log in to {destination} (authentication failed); check your key, agent or "
            f"password with `ssh {destination}` and try again.",
            detail=tail(stderr),
        )
    detail = tail(stderr) if tail(stderr).strip() != last else None
    if any(s in stderr for s in UNREACHABLE_SIGNS):
        return HostUnreachable(
            f"Cannot reach {host} over ssh ({last}); check the host name, your network or VPN, "
            f"and that `ssh {destination}` works.",
            detail=detail,
        )
    return HostUnreachable(
        f"ssh to {destination} failed ({last}); run `ssh {destination}` to see why.", detail=detail
    )


def tunnel_failure(stderr: str, destination: str, local_port: int | None) -> LabshareError:
    """Why the ssh holding a forward exited: the local port first, else what ssh said."""
    if local_port is not None and (
        any(s in stderr for s in LOCAL_PORT_SIGNS) or "forwarding failed" in stderr.lower()
    ):
        return local_port_taken(local_port)
    return classify_ssh_failure(stderr, destination)


def forwarding_refused(host: str, mode: str) -> ForwardingRefused:
    if mode == "socket":
        return ForwardingRefused(
            f"The ssh server on {host} does not allow forwarding to Unix sockets "
            "(AllowStreamLocalForwarding or DisableForwarding in its sshd_config); on "
            f"{host} run `labshare stop` and `labshare start --tcp`, then connect again, "
            "or ask the admin to allow it."
        )
    return ForwardingRefused(
        f"The ssh server on {host} does not allow port forwarding (AllowTcpForwarding or "
        "DisableForwarding in its sshd_config); ask the admin to allow forwarding for your account."
    )


def local_port_taken(port: int | None) -> LocalPortTaken:
    return LocalPortTaken(
        f"Local port {port} is already in use on this computer; pick another with "
        "--local-port, or leave it out to get a free one."
    )
