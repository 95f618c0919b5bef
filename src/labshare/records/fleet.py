"""One server's answer to `labshare fleet`: what `labshare fleet --here --json` prints there.

The laptop (or another server) asks every server of a group over ssh and
reads each answer with `HereAnswer.from_json(..., remote=True)`, so an
answer from an older or newer labshare is a sentence naming both versions,
never a `KeyError`.  It holds only what `labshare gpus` on that server shows
the member who asked: of other members their user name on a lease and
whether NVML saw them use the card lately; their notebooks, idle times and
reclaim times stay with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from labshare.records.base import Record


@dataclass(frozen=True)
class FleetCard(Record):
    """One card: NVML's figures, whether the asking member could lease it now, and who holds it."""

    VERSION: ClassVar[int] = 1

    index: int
    uuid: str
    name: str
    memory_total: int | None = None  # bytes
    memory_used: int | None = None
    utilization: int | None = None  # percent
    free: bool = False  # this member could get it now, under this server's rules
    holder: str | None = (
        None  # "alice", "alice, bob (shared)", "bob (no lease)": as `gpus` names them
    )
    holder_use: str | None = None  # "busy", "idle, leased 3 h ago": what NVML shows everyone
    mine: bool = False  # leased to the member who asked
    reclaim_at: float | None = (
        None  # the member's own leased kernel goes back then (seconds since epoch)
    )


@dataclass(frozen=True)
class Load(Record):
    """How busy the host is, as `uptime` and `free` would say."""

    VERSION: ClassVar[int] = 1

    cpus: int = 0
    load1: float = 0.0  # the 1-minute load average
    memory_total: int = 0  # bytes
    memory_available: int = 0


@dataclass(frozen=True)
class Mine(Record):
    """The asking member's own JupyterLab on that server."""

    VERSION: ClassVar[int] = 1

    running: bool = False
    mode: str | None = None
    kernels: int = 0
    gpus: int = 0  # cards leased to the member's kernels and commands there


@dataclass(frozen=True)
class HereAnswer(Record):
    """Everything `fleet` needs from one server, in one ssh call."""

    VERSION: ClassVar[int] = 1

    host: str  # the server's own hostname
    user: str
    assign: str = "off"  # `[gpus] assign`
    sharing: str = "exclusive"
    idle_reclaim_after: float | None = None  # seconds; None: idle kernels keep their cards
    cards: tuple[FleetCard, ...] = ()
    can_get: int = 0  # how many cards this member could get now under the server's rules
    why_not: str | None = None  # the placement's sentence when `can_get` is 0 and cards exist
    gpu_unavailable: str | None = None
    load: Load = Load()
    servers_running: int = 0  # members' JupyterLab servers running there
    mine: Mine = Mine()
    lab_servers: tuple[str, ...] | None = None  # that server's site config `[lab] servers`
    labshare: str | None = None  # the envelope's: the writer's labshare version

    @classmethod
    def upgrade(cls, data: dict[str, Any], version: int) -> dict[str, Any]:
        """The nested parts as records, so a reader meets types all the way down."""
        source = f"`labshare fleet --here --json` on {data.get('host', 'a server')}"
        out = dict(data)
        if isinstance(out.get("cards"), list):
            out["cards"] = [_nested(FleetCard, c, source, data) for c in out["cards"]]
        for name, kind in (("load", Load), ("mine", Mine)):
            if isinstance(out.get(name), dict):
                out[name] = _nested(kind, out[name], source, data)
        return out


def _nested(kind: type[Record], value: object, source: str, whole: dict[str, Any]) -> Any:
    """A nested part read with its parent's envelope, so its faults name the parent's versions."""
    if isinstance(value, dict):
        value = {"version": whole.get("version"), "labshare": whole.get("labshare"), **value}
    return kind.from_json(value, source, remote=True)


@dataclass(frozen=True)
class GroupChoice(Record):
    """The server `connect GROUP` opened last (connect/known.py's `LastChoice`): a hint, never trusted alone."""

    VERSION: ClassVar[int] = 1

    group: str
    host: str
