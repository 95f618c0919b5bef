"""Which cards a process is told it may use, for kernels and `labshare run` alike.

A process is told its cards by UUID with `CUDA_DEVICE_ORDER=PCI_BUS_ID`:
CUDA numbers cards fastest first unless told otherwise, NVML (and so
`nvidia-smi`, `labshare ps`) by PCI bus, so an index can name a different
card for the kernel than for the admin reading a table; a UUID never does.

`GpuPolicy` is the part of the site config a member's server needs to do
this for every kernel.  `labshare start` resolves it from the validated
config and hands it to the server as one JSON value, so a kernel start
never re-reads (or trips over) a config file an admin is editing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

from labshare.config import GpuSettings, Limits
from labshare.config.gpu_settings import DEFAULT_LEASES_DIR
from labshare.errors import LabshareError
from labshare.gpus import activity, leases, place
from labshare.gpus.nvml import GpuReader, NoGpu, NoNvml, read_nvml
from labshare.install_hint import reinstall_hint

ORDER = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


@dataclass(frozen=True)
class GpuPolicy:
    """`[gpus]` and the member's card limits, as one member's server applies them to its kernels."""

    assign: str = "off"
    per_kernel: int = 1
    sharing: str = "exclusive"
    gpus: tuple[int, ...] | None = None  # the member's `gpus = [..]`: the only cards, by NVML index
    max_gpus: int | None = None
    leases_dir: str = DEFAULT_LEASES_DIR
    idle_reclaim_after: float | None = None  # seconds; None: idle kernels keep their cards
    reclaim_warning: float | None = None

    @classmethod
    def of(cls, settings: GpuSettings, limits: Limits) -> GpuPolicy:
        return cls(
            assign=settings.assign,
            per_kernel=settings.per_kernel,
            sharing=settings.sharing,
            gpus=limits.gpus,
            max_gpus=limits.max_gpus,
            leases_dir=str(settings.leases_dir),
            idle_reclaim_after=settings.idle_reclaim_after,
            reclaim_warning=settings.reclaim_warning,
        )

    @property
    def leased(self) -> bool:
        return self.assign == "per-kernel"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GpuPolicy:
        """The policy `to_json` wrote; "" (a server started without one) is today's behaviour.

        A server started before the member's cards were called `gpus` passes them as `allowed`.
        """
        if not text:
            return cls()
        data: dict[str, Any] = json.loads(text)
        if "allowed" in data:
            data["gpus"] = data.pop("allowed")
        gpus = data.get("gpus")
        return cls(**{**data, "gpus": None if gpus is None else tuple(gpus)})

    def placement(self, count: int, *, for_command: bool = False) -> place.PlacementRules:
        """Placement's rules for a kernel (or a `labshare run` command) that asks for `count` cards."""
        gpus = None if self.gpus is None else frozenset(self.gpus)
        return place.PlacementRules(
            per_kernel=count,
            sharing=cast(place.Sharing, self.sharing),
            gpus=gpus,
            max_gpus=self.max_gpus,
            for_command=for_command,
        )


def visible(uuids: Sequence[str]) -> dict[str, str]:
    """The environment that shows a process exactly these cards (none for an empty list)."""
    return {"CUDA_VISIBLE_DEVICES": ",".join(uuids), **ORDER}


def static_env(indexes: Sequence[int], reader: GpuReader = read_nvml) -> dict[str, str]:
    """A member's fixed cards (`gpus = [0, 1]`) by UUID; by index where NVML cannot be read.

    With PCI_BUS_ID order CUDA counts cards as NVML does, so the indexes
    still name the admin's cards.  An index NVML does not show is left out:
    "only these cards" must never become another card.
    """
    try:
        devices = reader()
    except NoGpu:
        return {"CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in indexes), **ORDER}
    uuids = {d.index: d.uuid for d in devices if d.uuid}
    return visible([uuids[i] for i in indexes if i in uuids])


def server_env(policy: GpuPolicy, reader: GpuReader = read_nvml) -> dict[str, str]:
    """What the member's server (and so its terminals) is told; kernels are told again, by lease.

    With leases the server itself sees no card: a script in a Lab terminal
    gets one with `labshare run --gpus N`, not by landing on someone's.
    """
    if policy.leased:
        return visible([])
    if policy.gpus is None:
        return {}
    return static_env(policy.gpus, reader)


def read_cards(reader: GpuReader = read_nvml) -> list[place.Card]:
    """The cards to lease from; a LabshareError when NVML cannot say, since guessing would share a card."""
    try:
        devices = reader()
    except NoNvml:
        why = f"nvidia-ml-py is not installed (to add it, {reinstall_hint('gpu')})"
    except NoGpu as exc:
        why = f"NVML does not answer ({exc.cause})"
    else:
        return [
            place.Card(
                index=d.index,
                uuid=d.uuid,
                memory_total=d.memory_total_bytes or 0,
                memory_used=d.memory_used_bytes or 0,
            )
            for d in devices
            if d.uuid
        ]
    raise LabshareError(
        f'GPUs are leased per kernel on this host ([gpus] assign = "per-kernel") but {why}, '
        "so no GPU can be leased and nothing was started."
    )


def take(
    policy: GpuPolicy, count: int, holder: leases.Holder, reader: GpuReader = read_nvml
) -> tuple[list[leases.Lease], dict[str, str]]:
    """Lease `count` cards for `holder`, and the environment that shows exactly those.

    The cards are listed in bus order, so `cuda:0` is the same card each time
    a kernel gets the same set.
    """
    if count == 0:
        return [], visible([])
    leases.directory(Path(policy.leases_dir)).checked()
    cards = read_cards(reader)
    taken = leases.claim(
        Path(policy.leases_dir),
        cards,
        policy.placement(count, for_command=not holder.kernel),
        holder,
        describe=activity.describer(),
    )
    return taken, env_of(taken, cards)


def env_of(held: Sequence[leases.Lease], cards: Sequence[place.Card]) -> dict[str, str]:
    index = {card.uuid: card.index for card in cards}
    return visible(
        sorted((lease.card for lease in held), key=lambda uuid: (index.get(uuid, len(index)), uuid))
    )
