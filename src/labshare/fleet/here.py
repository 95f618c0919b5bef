"""The server's side of `labshare fleet`: this host's answer, built from what `gpus` and `status` read.

`labshare fleet --here --json` runs this on each server, over the member's
own ssh, so one ssh call per server brings everything the laptop needs:
the cards and their leases (the same snapshot and report as `labshare
gpus`, so the two never disagree and fleet shows of other members exactly
what `gpus` shows them), which cards the member could get now under this
server's own rules (placement's own `candidates`, not a second placement),
the host's load, how many members' servers run, and the member's own
server.  Only the laptop side (ask.py, choose.py) is imported on a laptop.
"""

from __future__ import annotations

import os
import socket

import psutil

from labshare import config
from labshare.errors import LabshareError
from labshare.fleet import group
from labshare.gpus import activity, history, place
from labshare.gpus.assign import GpuPolicy
from labshare.monitor import attribution, gpu_report
from labshare.monitor.processes import Scanner
from labshare.monitor.sampling import read_processes
from labshare.paths import Paths
from labshare.records.fleet import FleetCard, HereAnswer, Load, Mine
from labshare.server import status as server_status
from labshare.users import user_name


def answer(paths: Paths) -> HereAnswer:
    """This host, as the member running it may see it."""
    me = user_name(os.getuid())
    site, policy = config.effective(paths.site_config, paths.user_config_file, me)
    gpus = GpuPolicy.of(site.gpus, policy.limits)
    scanner = Scanner(
        all_users=False,
        everyones_gpu_processes=True,
        interval=0.0,
        leases_dir=site.gpus.leases_dir,
        leasing=site.gpus.leased,
    )
    snap = scanner.scan()
    notices = history.warnings(paths.state_dir)
    report = gpu_report.build(snap, site.gpus, notices=notices)
    live = [lease for lease in snap.leases if lease.live]
    cards = [
        place.Card(
            index=d.index,
            uuid=d.uuid,
            memory_total=d.memory_total_bytes or 0,
            memory_used=d.memory_used_bytes or 0,
        )
        for d in snap.gpus
        if d.uuid
    ]
    busy_unleased = {u.uuid for u in report.unleased if u.uuid}
    free, can_get, why_not = _free_cards(cards, gpus, live, busy_unleased, os.getuid())
    describe = activity.describer()
    rows = []
    for card in report.cards:
        held = [r for r in card.leases if not r.stale]
        others = [u for u in report.unleased if u.uuid == card.uuid]
        names = sorted({r.user for r in held})
        holder = ", ".join(names) + (" (shared)" if held and all(r.shared for r in held) else "")
        if not names and others:
            holder = ", ".join(sorted({u.user or "?" for u in others})) + " (no lease)"
        use = None
        lease = next((x for x in live if x.card == card.uuid and x.uid != os.getuid()), None)
        if lease is not None and card.uuid not in free:
            use = describe(lease)
        due = [notices[r.kernel_id].at for r in held if r.user == me and r.kernel_id in notices]
        rows.append(
            FleetCard(
                index=card.index,
                uuid=card.uuid or "",
                name=card.name,
                memory_total=card.memory_total_bytes,
                memory_used=card.memory_used_bytes,
                utilization=card.utilization_percent,
                free=bool(card.uuid) and card.uuid in free,
                holder=holder or None,
                holder_use=use,
                mine=any(r.user == me for r in held),
                reclaim_at=min(due) if due else None,
            )
        )
    own = server_status.status(paths)
    return HereAnswer(
        host=socket.gethostname(),
        user=me,
        assign=site.gpus.assign,
        sharing=site.gpus.sharing,
        idle_reclaim_after=site.gpus.idle_reclaim_after if site.gpus.leased else None,
        cards=tuple(rows),
        can_get=can_get,
        why_not=why_not,
        gpu_unavailable=snap.gpu_unavailable,
        load=_load(),
        servers_running=len(attribution.find(read_processes(), None)),
        mine=Mine(
            running=own.running,
            mode=own.mode,
            kernels=own.kernels or 0,
            gpus=len({x.card for x in live if x.uid == os.getuid()}),
        ),
        lab_servers=group.site_lab_servers(paths.site_config),
    )


def _free_cards(
    cards: list[place.Card],
    gpus: GpuPolicy,
    live: list,  # leases.Lease
    busy_unleased: set[str],
    uid: int,
) -> tuple[set[str], int, str | None]:
    """The cards this member could get one of now, how many at once, and why none when none.

    Leased hosts ask placement exactly as a kernel start would; on a host
    without leases a card is free when no process uses it.
    """
    if not cards:
        return set(), 0, None
    rules = gpus.placement(1)
    try:
        order = place.candidates(cards, rules, live if gpus.leased else [], uid)
    except LabshareError as exc:
        return set(), 0, exc.message
    free = {c.uuid for c in order if gpus.leased or c.uuid not in busy_unleased}
    count = len(free)
    if gpus.leased and gpus.max_gpus is not None:
        held = len({x.card for x in live if x.uid == uid})
        count = min(count, max(0, gpus.max_gpus - held))
    return free, count, None if count else "no card you may use is free"


def load1() -> float:
    """The one-minute load as `uptime` and `top` show it here: /proc/loadavg, which a container's
    lxcfs makes the container's own, where glibc's getloadavg() would give the host's (it asks sysinfo).
    """
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        try:
            return os.getloadavg()[0]
        except OSError:
            return 0.0


def _load() -> Load:
    memory = psutil.virtual_memory()
    return Load(
        cpus=os.cpu_count() or 1,
        load1=round(load1(), 2),
        memory_total=int(memory.total),
        memory_available=int(memory.available),
    )
