"""What the site policy means on this host right now, for `labshare admin check` and `admin ports`.

Read-only: it validates the site config (by loading it), resolves every
member's effective policy, and sets port assignments and claims beside
what actually listens, so an admin sees conflicts before members do.
"""

from __future__ import annotations

import json
import pwd
import socket
from dataclasses import dataclass, field
from pathlib import Path

from labshare import config
from labshare.listeners import listener
from labshare.notify.plan import LabNotices, lab_plan
from labshare.records import RecordError
from labshare.records.server import HubServer, ServerState
from labshare.server import ports, state
from labshare.users import enable_linger, lingers


@dataclass
class MemberPolicy:
    user: str
    has_account: bool
    admin: bool
    mode: str
    root_dir: str
    port: int | None
    gpus: list[int] | None  # the only cards this member may use; None: every card
    max_gpus: int | None  # cards held at once, with leases; None: no cap
    # cards a new kernel leases unless its project says otherwise; None: no leases
    per_kernel: int | None
    memory_max: str | None
    cpus: float | None
    cull_idle_kernels_after: float | None
    shutdown_idle_server_after: float | None
    limits_enforceable: bool | None
    server: str | None = (
        None  # what runs the member's server here now: "labshare start", "JupyterHub"
    )


@dataclass
class SiteCheck:
    site_config: str
    exists: bool
    gpus: config.GpuSettings = field(default_factory=config.GpuSettings)
    members: list[MemberPolicy] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notices: LabNotices | None = None  # the lab's notice channels and who gets what on them


@dataclass
class PortRow:
    port: int
    owner: str
    source: str
    listening_user: str | None
    listening_pid: int | None
    conflict: bool


def check(site_path: Path) -> SiteCheck:
    site = config.load_site(site_path)
    result = SiteCheck(site_config=str(site_path), exists=site.path is not None, gpus=site.gpus)
    for user in config.members(site):
        try:
            pwd.getpwnam(user)
            has_account = True
        except KeyError:
            has_account = False
            result.problems.append(
                f"{user} is named in {site_path} but has no Unix account on this host."
            )
        policy = config.policy_for(site, user, config.groups_of(user))
        limited = policy.limits.memory_max is not None or policy.limits.cpus is not None
        result.members.append(
            MemberPolicy(
                user=user,
                has_account=has_account,
                admin=user in site.admins,
                mode=policy.mode,
                root_dir=policy.root_dir,
                port=policy.port,
                gpus=list(policy.limits.gpus) if policy.limits.gpus is not None else None,
                max_gpus=policy.limits.max_gpus,
                per_kernel=site.gpus.per_kernel if site.gpus.leased else None,
                memory_max=policy.limits.memory_max,
                cpus=policy.limits.cpus,
                cull_idle_kernels_after=policy.cull_idle_kernels_after,
                shutdown_idle_server_after=policy.shutdown_idle_server_after,
                limits_enforceable=lingers(user) if limited else None,
                server=running_server(user),
            )
        )
        if limited and not lingers(user):
            result.problems.append(
                f"The memory/CPU limits of {user} are not enforced here: they need a systemd user manager; "
                f"run `{enable_linger(user)}`."
            )
        if policy.limits.max_gpus is not None and not site.gpus.leased:
            result.problems.append(
                f'max_gpus of {user} caps GPU leases, and there are none while [gpus] assign = "off": '
                'set assign = "per-kernel" or list their cards with gpus = [...].'
            )
    if site.gpus.leased and site.gpus.per_kernel:
        result.problems.extend(_no_cards_to_lease())
    result.notices = lab_plan(site.notify, [m.user for m in result.members])
    return result


def _no_cards_to_lease() -> list[str]:
    """Kernels lease a card each, but this host shows none: every such kernel would refuse to start."""
    from labshare.gpus.nvml import read, read_nvml

    reading = read(read_nvml)
    if reading.devices:
        return []
    return [
        f'GPUs are leased per kernel ([gpus] assign = "per-kernel"), but this host shows none '
        f"({reading.unavailable or 'NVML lists no card'}), so every kernel that leases one refuses "
        'to start; fix that (`labshare doctor` says more), or set per_kernel = 0 or assign = "off".'
    ]


def running_server(user: str) -> str | None:
    """Whether the member's server runs here, and who started it; read as it stands, never cleaned up."""
    try:
        folder = Path(pwd.getpwnam(user).pw_dir) / ".local/state/labshare" / socket.gethostname()
    except KeyError:
        return None
    for name, kind, label in (
        ("hub_server.json", HubServer, "JupyterHub"),
        ("server.json", ServerState, "labshare start"),
    ):
        try:
            record = kind.from_json(json.loads((folder / name).read_text()), str(folder / name))
        except (OSError, ValueError, RecordError):
            continue
        if isinstance(record, HubServer) and state.alive(record.pid, record.started):
            return label
        if isinstance(record, ServerState) and state.alive(
            record.supervisor_pid, record.supervisor_started
        ):
            return label
    return None


def port_table(site_path: Path) -> list[PortRow]:
    site = config.load_site(site_path)
    owners: dict[int, tuple[str, str]] = {
        p: (u, "assigned") for u, p in site.port_assignments.items()
    }
    for claim in ports.claims(site):
        owners.setdefault(claim.port, (claim.user, "claimed"))
    rows = []
    for port, (owner, source) in sorted(owners.items()):
        found = listener(port)
        rows.append(
            PortRow(
                port=port,
                owner=owner,
                source=source,
                listening_user=found.user if found else None,
                listening_pid=found.pid if found else None,
                conflict=bool(found and found.user != owner),
            )
        )
    return rows
