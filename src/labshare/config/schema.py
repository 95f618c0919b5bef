"""Every key of labshare's config files, as data: the one place a key is added.

The site config, a member's own config and a project's `[tool.labshare]` are
checked from this table, the config dataclasses take their defaults from it,
and `python -m labshare.config.reference` writes the manual's reference
tables from it, so the checks, the defaults and the manual cannot drift
(the habit of TLJH's `config_schema.py`).  A default is written as an admin
would write it in TOML and parsed like any other value.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labshare.config.values import MEMORY_SIZE, ConfigError, fail, seconds

SITE, MEMBER, PROJECT = "site", "member", "project"


@dataclass(frozen=True)
class Kind:
    """A value type: its name in the manual and in errors, and `parse` from TOML to the code's value.

    `parse` raises ValueError for a value it refuses; `check` turns that into the sentence.
    """

    doc: str
    parse: Callable[[object], object]


def _when(ok: bool, value: object) -> object:
    if not ok:
        raise ValueError(value)
    return value


def choice(*choices: str) -> Kind:
    return Kind(" or ".join(f'`"{c}"`' for c in choices), lambda v: _when(v in choices, v))


def whole(low: int, high: int | None = None, doc: str | None = None) -> Kind:
    """An integer from `low` (to `high`); `true` is no number here, whatever Python says."""

    def parse(value: object) -> int:
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or value < low
            or (high is not None and value > high)
        ):
            raise ValueError(value)
        return value

    return Kind(doc or (f"an integer {low}-{high}" if high else f"an integer ≥ {low}"), parse)


def _text(value: object) -> str:
    return str(_when(isinstance(value, str) and bool(value.strip()), value))


def _absolute(value: object) -> str:
    return str(_when(_text(value).startswith("/"), value))


def _port_range(value: object) -> tuple[int, int]:
    m = re.match(r"^\s*(\d+)\s*-\s*(\d+)\s*$", value) if isinstance(value, str) else None
    if not m or not 1024 <= int(m.group(1)) <= int(m.group(2)) <= 65535:
        raise ValueError(value)
    return int(m.group(1)), int(m.group(2))


def _list_of(test: Callable[[object], bool]) -> Callable[[object], tuple[object, ...]]:
    def parse(value: object) -> tuple[object, ...]:
        if not isinstance(value, list) or not all(test(x) for x in value):
            raise ValueError(value)
        return tuple(value)

    return parse


def _cpus(value: object) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise ValueError(value)
    return float(value)


BOOL = Kind("true or false", lambda v: _when(isinstance(v, bool), v))
DURATION = Kind('a duration: seconds, or "90s", "30m", "12h", "2d" (0: off)', seconds)
SIZE = Kind(
    'a size such as "64G" (systemd\'s `MemoryMax`)',
    lambda v: _when(isinstance(v, str) and bool(MEMORY_SIZE.match(v)), v),
)
FOLDER = Kind('a folder path such as "~/projects"', _text)
ABSOLUTE = Kind("an absolute path", _absolute)
DIRECTORY = Kind(
    "an absolute path", lambda v: Path(_absolute(v))
)  # a folder labshare itself works in
TEXT = Kind("a non-empty string", _text)
IP = Kind(
    'an IP address such as "127.0.0.1"',
    lambda v: _when(bool(re.match(r"^(\d{1,3}(\.\d{1,3}){3}|[0-9a-fA-F:]+)$", _text(v))), v),
)
PORT = whole(1, 65535, "a port number 1-65535")
MEMBER_PORT = whole(1024, 65535, "a port number 1024-65535")
PORT_RANGE = Kind('a range "LOW-HIGH" within 1024-65535, low end first', _port_range)
GPU_COUNT = whole(0, doc="a whole number of GPUs (0 for none)")
POSITIVE = whole(1, doc="a positive whole number")
CPUS = Kind("a positive number of CPUs", _cpus)
GPU_INDEXES = Kind(
    "a list of GPU indices such as [0, 1]",
    _list_of(lambda g: isinstance(g, int) and not isinstance(g, bool) and g >= 0),
)
NAMES = Kind("a list of user names", _list_of(lambda n: isinstance(n, str)))
HOSTS = Kind(
    'a list of ssh host names such as ["gpu1", "gpu2"] (aliases of `~/.ssh/config` too)',
    _list_of(lambda n: isinstance(n, str) and bool(re.match(r"^[^\s,]+$", n))),
)
TABLE = Kind("a table", lambda v: _when(isinstance(v, Mapping), v))
ENV = Kind(
    "a table of strings", lambda v: v
)  # as written: the kernel's start reads it and says what is wrong

NOTICE_KINDS = ("cell", "kernel_died", "reclaim", "run", "server")
EVENTS = Kind(f"a list drawn from {', '.join(NOTICE_KINDS)}", _list_of(lambda e: e in NOTICE_KINDS))
ADDRESS = Kind(
    'a template such as "{user}@lab.example", or a table of user name = address',
    lambda v: _when(
        (isinstance(v, str) and "{user}" in v)
        or (isinstance(v, Mapping) and all(isinstance(x, str) for x in v.values())),
        v,
    ),
)


@dataclass(frozen=True)
class Key:
    """One key: where it lives, its kind, its TOML default (None: not set), one line of help, and who sets it."""

    section: str  # "server", "users.NAME", "hub.slurm", "hosts.NAME", "tool.labshare"
    name: str
    kind: Kind
    default: object
    help: str
    who: tuple[str, ...] = (SITE,)
    default_doc: str | None = None  # the manual's words where "not set" means something

    @property
    def value(self) -> Any:
        """The default as the code holds it: what a missing key means."""
        return None if self.default is None else self.kind.parse(self.default)


def _server(
    name: str, kind: Kind, default: object, help: str, member: bool = True, **kw: Any
) -> Key:
    return Key("server", name, kind, default, help, (SITE, MEMBER) if member else (SITE,), **kw)


_SERVER: tuple[Key, ...] = (
    _server(
        "mode",
        choice("socket", "tcp"),
        "socket",
        "where JupyterLab listens: a private Unix socket, or 127.0.0.1 and a port (token still required)",
    ),
    _server(
        "root_dir",
        FOLDER,
        "~/projects",
        "the folder the file browser shows (created if missing; the home directory or above it is refused)",
    ),
    _server(
        "cull_idle_kernels_after",
        DURATION,
        None,
        "shut down kernels idle this long (Jupyter's `MappingKernelManager.cull_idle_timeout`)",
        default_doc="off",
    ),
    _server(
        "cull_busy_kernels",
        BOOL,
        False,
        "also cull kernels that are busy (Jupyter's `cull_busy`); members cannot override it",
        member=False,
    ),
    _server(
        "shutdown_idle_server_after",
        DURATION,
        None,
        "shut the server down after this long with no kernels, terminals or activity "
        "(Jupyter's `ServerApp.shutdown_no_activity_timeout`); also the default for `[hub] idle_timeout`",
        default_doc="off",
    ),
    _server(
        "keep_outputs",
        BOOL,
        True,
        "run cells on the server so output printed while no browser is open is kept; "
        "`start --keep-outputs/--no-keep-outputs` wins",
    ),
)
# `[notify]`: the site's keys say where the lab's channels are; a member's, what they want told.
NOTIFY_KEYS: tuple[Key, ...] = (
    Key(
        "notify",
        "channels_file",
        ABSOLUTE,
        None,
        "the root-only (0600) TOML file whose `urls` list the lab's apprise URLs; they hold secrets, "
        "so they are never in this world-readable file",
        default_doc="none: no lab channels",
    ),
    Key(
        "notify",
        "address",
        ADDRESS,
        None,
        "how a member is named on the lab's channels: `{address}` in a channel URL becomes this, "
        "anything else gets it before the text (a Slack mention such as `<@U0123>`)",
        default_doc="the user name",
    ),
    Key(
        "notify",
        "spool_dir",
        DIRECTORY,
        "/var/lib/labshare/notices",
        "where members' processes leave notices for the lab's channels; root-owned, mode 1733 "
        "(sticky, not listable)",
    ),
    Key(
        "notify",
        "expire_after",
        DURATION,
        "1d",
        "a notice not delivered this long after its event is dropped and counted",
    ),
    Key(
        "notify",
        "url",
        TEXT,
        None,
        "your own channel, an apprise URL (`labshare notify set URL`); a secret, so the file is kept 0600",
        (MEMBER,),
        default_doc="none",
    ),
    Key(
        "notify",
        "min_duration",
        DURATION,
        "5m",
        "a cell or `labshare run` shorter than this is not worth a notice",
        (MEMBER,),
    ),
    Key("notify", "events", EVENTS, list(NOTICE_KINDS), "the kinds of notice you want", (MEMBER,)),
    Key(
        "notify",
        "enabled",
        BOOL,
        True,
        "`labshare notify off` sets false: no notices at all, on any channel",
        (MEMBER,),
    ),
)
OVERRIDABLE = tuple(k.name for k in _SERVER if MEMBER in k.who)
MAY_OVERRIDE = Kind(
    f"a list drawn from {', '.join(OVERRIDABLE)}",
    lambda v: frozenset(_list_of(lambda k: k in OVERRIDABLE)(v)),
)

KEYS: tuple[Key, ...] = (
    *_SERVER,
    Key(
        "ports",
        "range",
        PORT_RANGE,
        None,
        "members without an assignment claim a port from here",
        default_doc="none (no claims)",
    ),
    Key(
        "ports",
        "claims_dir",
        DIRECTORY,
        "/var/lib/labshare/ports",
        "where claims are made, one file per port; must be owned by root with mode 1777",
    ),
    Key(
        "ports",
        "USER",
        MEMBER_PORT,
        None,
        "any user name: a fixed assignment, e.g. `alice = 10001`; no two users may have the same port",
        default_doc="none",
    ),
    Key(
        "users.NAME",
        "gpus",
        GPU_INDEXES,
        None,
        "the only cards (NVML indexes, as `nvidia-smi` and `labshare gpus` number them) this member's kernels "
        'may use: with `[gpus] assign = "off"` handed over as `CUDA_VISIBLE_DEVICES` by UUID; '
        'with `"per-kernel"` the only cards their kernels may lease',
        default_doc="none: every card",
    ),
    Key(
        "users.NAME",
        "max_gpus",
        GPU_COUNT,
        None,
        'with `[gpus] assign = "per-kernel"`, how many cards this member may hold leases on at once',
        default_doc="none: no cap",
    ),
    Key(
        "users.NAME",
        "memory_max",
        SIZE,
        None,
        "`systemd-run --user --scope -p MemoryMax=…` around the member's server, where a systemd user manager runs",
        default_doc="none",
    ),
    Key(
        "users.NAME",
        "cpus",
        CPUS,
        None,
        "`-p CPUQuota=` 100 % per CPU, likewise",
        default_doc="none",
    ),
    Key(
        "admin",
        "users",
        NAMES,
        [],
        "the lab's admins: members, and `admin_users` in the JupyterHub export",
    ),
    Key(
        "member",
        "may_override",
        MAY_OVERRIDE,
        list(OVERRIDABLE),
        "which `[server]` keys a member's own config may set; anything else there is refused by name",
    ),
    Key(
        "hub", "ip", IP, "127.0.0.1", "where the hub listens; anything else exposes it, on purpose"
    ),
    Key("hub", "port", PORT, 8000, "the hub's port"),
    Key(
        "hub",
        "authenticator",
        TEXT,
        "pam",
        'JupyterHub\'s authenticator (e.g. `"github"` or a class path on Kubernetes, where PAM cannot work)',
    ),
    Key(
        "hub",
        "idle_timeout",
        DURATION,
        None,
        "the idle culler's timeout for members' servers; `0` turns it off",
        default_doc="`[server] shutdown_idle_server_after`, else one day",
    ),
    Key(
        "hub",
        "prefix",
        ABSOLUTE,
        "/opt/jupyterhub",
        "the hub's virtual environment, used by `--plan` and the systemd unit",
    ),
    Key(
        "hub",
        "labshare",
        ABSOLUTE,
        None,
        "the `labshare` command on the hosts where members' servers run: the spawner runs "
        "`labshare singleuser` from it (on Slurm, the same path on every node)",
        default_doc="the `labshare` that runs `hub-config`",
    ),
    Key(
        "hub",
        "image",
        TEXT,
        None,
        "Kubernetes: the single-user image with labshare installed (see the Dockerfile in "
        "`docker/`); without one, members' servers are plain `jupyterhub-singleuser`",
        default_doc="none",
    ),
    Key("hub", "slurm", TABLE, None, "`[hub.slurm]`, below", default_doc="empty"),
    *(
        Key("hub.slurm", name, kind, None, help, default_doc="not set")
        for name, kind, help in (
            ("partition", TEXT, "`req_partition`"),
            ("runtime", TEXT, '`req_runtime`, e.g. `"24:00:00"`'),
            ("memory", SIZE, "`req_memory`"),
            ("cpus", POSITIVE, "`req_nprocs`"),
            (
                "gres",
                TEXT,
                '`req_gres`, e.g. `"gpu:1"` (a member\'s own `gpus` give them `gpu:N` instead)',
            ),
            ("account", TEXT, "`req_account`"),
            ("qos", TEXT, "`req_qos`"),
        )
    ),
    Key(
        "hub.slurm",
        "labshare_only_on_nodes",
        BOOL,
        False,
        "`true`: `[hub] labshare` (and `batchspawner-singleuser` beside it) is installed on the compute "
        "nodes only, so `hub-config` does not look for it on its own host and says so in a `# Note:`",
    ),
    Key(
        "gpus",
        "assign",
        choice("off", "per-kernel"),
        "off",
        '`"per-kernel"`: every kernel (and every `labshare run`) takes a lease on its cards before it starts, '
        "and gets only those",
    ),
    Key(
        "gpus",
        "per_kernel",
        GPU_COUNT,
        1,
        "cards a new kernel gets unless its project's `[tool.labshare] gpus` says otherwise; `0`: CPU only; "
        "larger than a member's `gpus` list or `max_gpus` is an error",
    ),
    Key(
        "gpus",
        "sharing",
        choice("exclusive", "shared"),
        "exclusive",
        '`"exclusive"`: one kernel per card; `"shared"`: several kernels per card, each placed on the card '
        "with the most free memory",
    ),
    Key(
        "gpus",
        "idle_reclaim_after",
        DURATION,
        None,
        "a leased kernel that Jupyter says is idle and that has not used its cards for this long is shut down "
        "(its notebook saved first) and its cards come back",
        default_doc="off",
    ),
    Key(
        "gpus",
        "reclaim_warning",
        DURATION,
        "15m",
        "how long before such a reclaim its owner is warned (server log, `labshare status`, `labshare gpus`, "
        "a notification in their open JupyterLab tabs)",
    ),
    Key(
        "gpus",
        "leases_dir",
        DIRECTORY,
        "/var/lib/labshare/gpus",
        "where leases are claimed; root-owned, mode 1777, like `[ports] claims_dir`",
    ),
    *NOTIFY_KEYS,
    Key(
        "hosts.NAME",
        "labshare",
        TEXT,
        None,
        "where labshare is on that server (`~/` is the home there)",
        (MEMBER,),
        default_doc="look on `PATH`, then `~/.local/bin/labshare`, then the login shell",
    ),
    Key(
        "hosts.NAME",
        "local_port",
        PORT,
        None,
        "the local port for the tunnel; `--local-port` wins",
        (MEMBER,),
        default_doc="the port this host had last time if free, else a free one",
    ),
    Key(
        "lab",
        "servers",
        HOSTS,
        None,
        "the lab's servers, as `ssh` names them: the group `lab` of `labshare fleet` and "
        "`labshare connect lab`; a member's own list wins over the site's",
        (SITE, MEMBER),
        default_doc="none",
    ),
    Key(
        "server_groups",
        "NAME",
        HOSTS,
        None,
        'any group name: its servers, e.g. `big = ["gpu2", "gpu3"]`, for `labshare fleet big` and '
        "`labshare connect big`",
        (MEMBER,),
        default_doc="none",
    ),
    Key(
        "tool.labshare",
        "env",
        ENV,
        None,
        "environment variables for the project's kernels; values may refer to the server's as `${NAME}`",
        (PROJECT,),
        default_doc="empty",
    ),
    Key(
        "tool.labshare",
        "gpus",
        GPU_COUNT,
        None,
        'with `[gpus] assign = "per-kernel"`, how many GPUs each of the project\'s kernels leases '
        "(0: CPU only); read at each kernel start",
        (PROJECT,),
        default_doc="the site's `[gpus] per_kernel`",
    ),
)

SITE_TABLES = (
    "server",
    "ports",
    "users",
    "groups",
    "admin",
    "member",
    "hub",
    "gpus",
    "lab",
    "notify",
)
MEMBER_TABLES = ("server", "hosts", "lab", "server_groups", "notify")


def keys(section: str, who: str | None = None) -> dict[str, Key]:
    """The keys of one section (`who`: only those that person may set), by name."""
    return {k.name: k for k in KEYS if k.section == section and (who is None or who in k.who)}


def key(section: str, name: str) -> Key:
    return keys(section)[name]


def default(section: str, name: str) -> Any:
    """A dataclass default: the schema's TOML default, parsed."""
    return key(section, name).value


def unknown(
    path: Path, where: str, table: Mapping[str, Any], known: Mapping[str, object] | tuple[str, ...]
) -> None:
    """Refuse the first key not in `known`, naming the file, the key and the closest valid one."""
    for name in table:
        if name not in known:
            raise ConfigError(unknown_sentence(path, where, name, list(known)))


def unknown_sentence(path: Path, where: str, name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    names = [f"`{k}`" for k in sorted(known)]
    listed = ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else "".join(names)
    guess = f"did you mean `{close[0]}`?" if close else f"the keys are {listed}."
    table = f"[{where}]" if where else "the top level"
    return f"{path}: {table} has no key `{name}`; {guess} Fix or remove it, then try again."


def check(path: Path, where: str, key: Key, value: object) -> Any:
    """The code's value for `value`, or one sentence naming the file, the key, the value and what is allowed."""
    try:
        return key.kind.parse(value)
    except ValueError:
        raise fail(path, f"{where}.{key.name}", f"must be {key.kind.doc}, got {value!r}") from None


def parse(path: Path, section: str, table: object, where: str | None = None) -> dict[str, Any]:
    """A section's table checked key by key (`where`: its name in the file, e.g. `users.alice`)."""
    if not isinstance(table, Mapping):
        raise fail(path, where or section, "must be a table")
    known = keys(section)
    unknown(path, where or section, table, known)
    return {
        name: check(path, where or section, known[name], value) for name, value in table.items()
    }
