"""`hub-config --plan`: the steps that move this host's lab onto JupyterHub, as data.

Nothing is run: the admin reads the steps, and members are told before their
servers stop.  Everything comes from the same facts the config is made from.
"""

from __future__ import annotations

import shlex
import shutil
import socket
from dataclasses import dataclass, field

from labshare.config import HubSettings
from labshare.envs.uv import shell_uv
from labshare.hub.jupyterhub import HubInputs
from labshare.install_hint import InstallRecord, upgrade_command

CONFIG_PATH = "/etc/jupyterhub/jupyterhub_config.py"
PIP = {
    "systemd": [
        "jupyterhub>=5.1",
        "jupyterlab",
        "jupyterhub-idle-culler",
        "jupyterhub-systemdspawner",
    ],
    "slurm": ["jupyterhub>=5.1", "jupyterlab", "jupyterhub-idle-culler", "batchspawner"],
}


@dataclass
class RunningServer:
    user: str
    mode: str | None
    port: int | None
    pid: int | None


@dataclass
class Step:
    title: str
    commands: list[str] = field(default_factory=list)
    text: str = ""


@dataclass
class Plan:
    spawner: str
    host: str
    running: list[RunningServer] = field(default_factory=list)
    ports_freed: list[int] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    unit: str | None = None
    access: str = ""
    warnings: list[str] = field(default_factory=list)


def unit_text(prefix: str, config_path: str) -> str:
    """A systemd unit for the hub, run from its own virtual environment."""
    return "\n".join(
        [
            "[Unit]",
            "Description=JupyterHub (set up by labshare hub-config)",
            "After=network.target",
            "",
            "[Service]",
            "User=root",
            f"Environment=PATH={prefix}/bin:/usr/local/bin:/usr/bin:/bin",
            "WorkingDirectory=/var/lib/jupyterhub",
            "StateDirectory=jupyterhub",
            f"ExecStart={prefix}/bin/jupyterhub -f {config_path}",
            "Restart=on-failure",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
            "",
        ]
    )


def checkout() -> str:
    """The labshare checkout this install came from, for a pip that installs it elsewhere."""
    record = InstallRecord.read()
    return record.source if record else "/path/to/labshare-checkout"


def make(inputs: HubInputs, spawner: str, host: str | None = None, node: str | None = None) -> Plan:
    """The migration plan for `spawner` on this host; `node` is the path of node, if found."""
    host = host or socket.gethostname()
    plan = Plan(spawner=spawner, host=host)
    plan.running = [
        RunningServer(m.name, m.mode, m.port, m.pid) for m in inputs.members if m.running
    ]
    freed = {m.port for m in inputs.members if m.running and m.port}
    freed |= set(inputs.site.port_assignments.values())
    plan.ports_freed = sorted(freed)
    if spawner == "kubernetes":
        _on_kubernetes(plan)
    else:
        _on_this_host(
            plan, inputs.site.hub, node if node is not None else shutil.which("node") or ""
        )
    for m in inputs.members:
        if m.root_dir and not m.root_dir.startswith(("~", "/")):
            plan.warnings.append(
                f"{m.name}'s root dir {m.root_dir!r} is relative; the hub starts servers in it from the home."
            )
    return plan


def _on_kubernetes(plan: Plan) -> None:
    plan.steps = [
        Step(
            "Write the Zero to JupyterHub values",
            ["labshare hub-config --spawner kubernetes -o values.yaml"],
            "Pick an authenticator that works inside Kubernetes (PAM does not) with [hub] authenticator, "
            "and mount the members' homes so their kernels come along.",
        ),
        Step(
            "Install the chart",
            [
                "helm upgrade --install jhub jupyterhub --repo https://hub.jupyter.org/helm-chart/ "
                "--namespace jhub --create-namespace --values values.yaml",
            ],
        ),
    ]
    plan.access = "kubectl --namespace jhub port-forward service/proxy-public 8000:80, then open http://127.0.0.1:8000"


def _on_this_host(plan: Plan, hub: HubSettings, node: str) -> None:
    """A hub run by systemd here, spawning with SystemdSpawner or onto Slurm's nodes."""
    spawner, host = plan.spawner, plan.host
    # The hub's venv by labshare's own uv: a stock Debian may have no python3-venv (no `-m venv`).
    uv = shlex.quote(shell_uv())
    into = f"{uv} pip install --python {shlex.quote(hub.prefix + '/bin/python')}"
    install = [] if node else ["apt-get install -y nodejs npm"]
    install += [
        "npm install -g configurable-http-proxy",
        f"{uv} venv --python python3 {shlex.quote(hub.prefix)}",
        f"{into} " + " ".join(shlex.quote(p) for p in PIP[spawner]),
    ]
    # The Slurm config names labshare's spawner class, so the hub's environment must import labshare.
    if spawner == "slurm":
        install.append(f"{into} {shlex.quote(checkout() + '[slurm]')}")
    plan.unit = unit_text(hub.prefix, CONFIG_PATH)
    plan.steps = [
        Step("Install JupyterHub, configurable-http-proxy and the spawner", install),
        Step(
            "Give labshare JupyterHub's single-user server",
            [upgrade_command("hub")],
            "The hub starts each member's server as `labshare singleuser`: labshare's own server "
            "(GPU leases per kernel, reclaim, kernels that survive a crash, output kept while away) "
            "under the hub's login."
            + (" Install it on every node, at the same path." if spawner == "slurm" else ""),
        ),
        Step(
            "Write the hub's config",
            [
                "install -d -m 0755 /etc/jupyterhub",
                f"labshare hub-config --spawner {spawner} -o {CONFIG_PATH}",
            ],
        ),
        Step(
            "Install the systemd unit for the hub",
            [
                "editor /etc/systemd/system/jupyterhub.service   # the unit below",
                "systemctl daemon-reload",
            ],
        ),
    ]
    if plan.running and spawner == "systemd":
        names = ", ".join(r.user for r in plan.running)
        plan.steps.append(
            Step(
                "Nothing to stop: running servers move when their member first uses the hub",
                [],
                f"Running now: {names}. When the hub starts a member's server, labshare stops their "
                "`labshare start` server and the hub's server adopts its kernels: the same kernel "
                "ids, variables and GPU leases. Until then they keep using `labshare start`; both "
                "kinds of server share the same leases and rules.",
            )
        )
    elif plan.running:
        names = ", ".join(r.user for r in plan.running)
        plan.steps.append(
            Step(
                "Ask the members with a running server to save their work and stop it",
                [f"sudo -u {r.user} -H labshare stop" for r in plan.running],
                f"Running now: {names}. Their servers will run on Slurm's nodes, where the kernels "
                "running here cannot follow; their environments stay in their homes.",
            )
        )
    plan.steps.append(
        Step("Start the hub", ["systemctl enable --now jupyterhub", "systemctl status jupyterhub"])
    )
    plan.access = f"ssh -N -L {hub.port}:127.0.0.1:{hub.port} USER@{host}, then open http://127.0.0.1:{hub.port}"
    if hub.ip != "127.0.0.1":
        plan.access = (
            f"open http://{host}:{hub.port} (the hub listens on {hub.ip}, as [hub] ip says)"
        )
    if spawner == "slurm":
        plan.warnings.append(
            "Single-user servers run on compute nodes: set c.JupyterHub.hub_connect_ip to an address the nodes "
            "can reach and make sure jupyterhub and jupyterlab are installed on the nodes too."
        )
