"""A real JupyterHub booted from the config `labshare hub-config` wrote, for the tests that need one.

The generated file is loaded as it is; a small test config on top swaps
what this machine cannot do (no systemd as PID 1: LocalProcessSpawner; no
PAM passwords: DummyAuthenticator), keeps the hub's files in one folder, and
adds a service token the tests use as an admin would.  Booting takes most
of a test's time, so modules boot one hub and share it (module scope, one
xdist group).  Everything the hub started is stopped by pid at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import BIN, Member, free_port, kill_all, wait_for
from fake_gpus import FakeNvml, cards
from jupyter_api import Lab

from labshare import probe

TOKEN = uuid.uuid4().hex
SERVICE_SCOPES = [
    "admin:users",
    "admin:servers",
    "access:servers",
    "list:users",
    "read:users",
    "list:services",
    "read:services",
]


def adopt(member: Member) -> None:
    """The account's passwd home is the test's HOME, as the hub's spawners (and Slurm) start there."""
    subprocess.run(["usermod", "-d", str(member.home), member.name], check=True)
    (member.home / "projects").mkdir(exist_ok=True)
    os.chown(member.home / "projects", member.uid, -1)


def stand_ins(where: Path, nvml_stub: Path, count: int) -> tuple[FakeNvml, Path]:
    """`count` stand-in cards and a leases directory as the admin makes it (1777), in `where`."""
    fake = FakeNvml(lib_dir=nvml_stub, path=where / "nvml.txt", cards=cards(count))
    fake.write()
    leases_dir = where / "gpus"
    leases_dir.mkdir()
    leases_dir.chmod(0o1777)
    return fake, leases_dir


def hub_env(site: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The admin's environment for hub-config and the hub: root's, with the test's site config."""
    return {
        "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "LABSHARE_SITE_CONFIG": str(site),
        **(extra or {}),
    }


def generate(site: Path, where: Path, spawner: str, env: dict[str, str]) -> Path:
    """`labshare hub-config --spawner SPAWNER -o where/jupyterhub_config.py`, as the admin runs it."""
    generated = where / "jupyterhub_config.py"
    done = subprocess.run(
        [str(BIN / "labshare"), "hub-config", "--spawner", spawner, "-o", str(generated)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return generated


def override(generated: Path, where: Path, extra: str = "") -> Path:
    """Test-only changes on top of the generated config: the hub's files in `where`, a password login,
    a service token, and (`extra`) what the test's spawner needs."""
    api_port, proxy_port = free_port(), free_port()
    path = where / "test_config.py"
    path.write_text(f"""
c = get_config()  # noqa: F821
load_subconfig({str(generated)!r})  # noqa: F821
c.JupyterHub.authenticator_class = "jupyterhub.auth.DummyAuthenticator"
c.DummyAuthenticator.password = "test-password"
c.JupyterHub.db_url = "sqlite:///{where}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{where}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = "{where}/jupyterhub.pid"
c.JupyterHub.hub_port = {api_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_port}"
c.ConfigurableHTTPProxy.pid_file = "{where}/proxy.pid"
c.Spawner.start_timeout = 300
c.Spawner.http_timeout = 300
c.JupyterHub.services.append({{"name": "labshare-test", "api_token": {TOKEN!r}}})
c.JupyterHub.load_roles.append({{"name": "labshare-test", "services": ["labshare-test"],
    "scopes": {SERVICE_SCOPES!r}}})
{extra}
""")
    return path


@dataclass
class Hub:
    """A booted hub: its port, its process, the folder with its log."""

    port: int
    process: subprocess.Popen
    where: Path
    log: Any = field(repr=False, default=None)

    def call(self, method: str, path: str, body: object = None) -> probe.Response:
        data = json.dumps(body).encode() if body is not None else None
        return probe.request(
            probe.Address(port=self.port), path, token=TOKEN, method=method, body=data, timeout=60
        )

    def user(self, name: str) -> dict[str, Any]:
        return self.call("GET", f"/hub/api/users/{name}").json()

    def server(self, name: str) -> dict[str, Any]:
        return self.user(name).get("servers", {}).get("", {})

    def spawn(self, name: str, timeout: float = 300) -> Lab:
        """Start `name`'s server through the hub's API and wait until the hub says it is ready."""
        made = self.call("POST", f"/hub/api/users/{name}")
        assert made.status in (201, 409), made.body  # allowed_users made them at start
        started = self.call("POST", f"/hub/api/users/{name}/server")
        assert started.status in (201, 202), started.body
        wait_for(
            lambda: self.server(name).get("ready"),
            timeout=timeout,
            what=f"{name}'s server behind the hub",
            ignoring=(OSError, ValueError),
        )
        return self.lab(name)

    def lab(self, name: str) -> Lab:
        """The member's server through the hub's proxy, as the test service (which may use it)."""
        return Lab(probe.Address(port=self.port), TOKEN, prefix=f"/user/{name}")

    def log_text(self) -> str:
        if self.log:
            self.log.flush()
        return (self.where / "hub.log").read_text(errors="replace")


def boot(config: Path, where: Path, port: int, env: dict[str, str]) -> Hub:
    """Start JupyterHub with `config` and wait for its API; the caller stops it with `stop`."""
    if not shutil.which("configurable-http-proxy", path=env.get("PATH")):
        pytest.fail("configurable-http-proxy is not installed (scripts/test installs it with npm)")
    log = open(where / "hub.log", "w")
    process = subprocess.Popen(
        [str(BIN / "jupyterhub"), "-f", str(config)],
        cwd=where,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    hub = Hub(port=port, process=process, where=where, log=log)
    try:
        wait_for(
            lambda: hub.call("GET", "/hub/api/").status == 200,
            timeout=300,
            what="the hub answering",
            ignoring=(OSError,),
        )
    except BaseException:
        print(hub.log_text()[-6000:])
        stop(hub)
        raise
    return hub


def stop(hub: Hub) -> None:
    """Stop the hub and everything it started (proxy, culler, servers), by pid."""
    try:
        family = psutil.Process(hub.process.pid).children(recursive=True)
    except psutil.Error:
        family = []
    hub.process.send_signal(signal.SIGTERM)
    try:
        hub.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        hub.process.kill()
        hub.process.wait(timeout=30)
    kill_all(family, timeout=30)
    if hub.log:
        hub.log.close()
