"""A real JupyterHub booted from the generated config: a member logs in, and their labshare kernels run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

import psutil
import pytest
from conftest import BIN, Member, free_port, kill_all, site_file, wait_for
from jupyter_api import Lab

from labshare import probe

TOKEN = uuid.uuid4().hex


def call(
    port: int, method: str, path: str, body: object = None, token: str = TOKEN
) -> probe.Response:
    data = json.dumps(body).encode() if body is not None else None
    return probe.request(
        probe.Address(port=port), path, token=token, method=method, body=data, timeout=60
    )


def override(generated: Path, where: Path, api_port: int, proxy_port: int) -> Path:
    """Test-only changes: LocalProcessSpawner (no systemd here), a password login, the hub's files in `where`."""
    path = where / "test_config.py"
    path.write_text(f"""
c = get_config()  # noqa: F821
load_subconfig({str(generated)!r})  # noqa: F821
c.JupyterHub.spawner_class = "jupyterhub.spawner.LocalProcessSpawner"
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
    "scopes": ["admin:users", "admin:servers", "access:servers", "list:users", "read:users",
               "list:services", "read:services"]}})
""")
    return path


def stop_all(hub: subprocess.Popen) -> None:
    """Stop the hub and everything it started (proxy, culler, servers), by pid."""
    try:
        family = psutil.Process(hub.pid).children(recursive=True)
    except psutil.Error:
        family = []
    hub.send_signal(signal.SIGTERM)
    try:
        hub.wait(timeout=60)
    except subprocess.TimeoutExpired:
        hub.kill()
        hub.wait(timeout=30)
    kill_all(family, timeout=30)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_member_logs_into_the_hub_and_their_labshare_kernel_runs(
    make_user, shared_tmp: Path
) -> None:
    if not shutil.which("configurable-http-proxy"):
        pytest.fail("configurable-http-proxy is not installed (scripts/test installs it with npm)")
    alice: Member = make_user()
    subprocess.run(["usermod", "-d", str(alice.home), alice.name], check=True)
    (alice.home / "projects").mkdir()
    os.chown(alice.home / "projects", alice.uid, -1)
    alice.extra_env.update(
        {"UV_CACHE_DIR": str(alice.home / ".cache/uv"), "UV_PYTHON_DOWNLOADS": "never"}
    )
    for key in (
        "UV_INDEX_URL",
        "UV_DEFAULT_INDEX",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "HTTPS_PROXY",
        "https_proxy",
    ):
        if key in os.environ:  # the package index as this machine reaches it
            alice.extra_env[key] = os.environ[key]
    made = alice.run(
        "env",
        "create",
        "thesis",
        "--path",
        str(alice.home / "projects/thesis"),
        "--json",
        timeout=900,
    )
    assert made.returncode == 0, made.stderr
    spec = json.loads(made.stdout)["name"]

    port = free_port()
    site = site_file(
        shared_tmp,
        f"""
[users.{alice.name}]
gpus = [3]
memory_max = "2G"
cpus = 1.5
[hub]
port = {port}
""",
    )
    hubdir = shared_tmp / "hub"
    hubdir.mkdir()
    generated = hubdir / "jupyterhub_config.py"
    env = {
        "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "LABSHARE_SITE_CONFIG": str(site),
    }
    done = subprocess.run(
        [str(BIN / "labshare"), "hub-config", "--spawner", "systemd", "-o", str(generated)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr

    config = override(generated, hubdir, free_port(), free_port())
    log = open(hubdir / "hub.log", "w")
    hub = subprocess.Popen(
        [str(BIN / "jupyterhub"), "-f", str(config)],
        cwd=hubdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(
            lambda: call(port, "GET", "/hub/api/").status == 200,
            timeout=300,
            what="the hub answering",
            ignoring=(OSError,),
        )
        listening = {
            c.laddr.ip
            for c in psutil.net_connections("tcp")
            if c.status == "LISTEN" and c.laddr.port == port
        }
        assert listening == {"127.0.0.1"}

        made_user = call(port, "POST", f"/hub/api/users/{alice.name}")
        assert made_user.status in (201, 409), (
            made_user.body
        )  # allowed_users already made them at start
        assert call(port, "POST", f"/hub/api/users/{alice.name}/server").status in (201, 202)
        wait_for(
            lambda: (
                call(port, "GET", f"/hub/api/users/{alice.name}")
                .json()
                .get("servers", {})
                .get("", {})
                .get("ready")
            ),
            timeout=600,
            what="the member's server",
            ignoring=(OSError,),
        )

        base = f"/user/{alice.name}"
        specs = call(port, "GET", f"{base}/api/kernelspecs").json()["kernelspecs"]
        assert spec in specs and specs[spec]["spec"]["metadata"]["labshare"]["project"].endswith(
            "/projects/thesis"
        )
        kernel = call(port, "POST", f"{base}/api/kernels", {"name": spec})
        assert kernel.status == 201, kernel.body
        lab = Lab(probe.Address(port=port), TOKEN, prefix=base)
        out = lab.execute(
            kernel.json()["id"],
            "import os, sys; print(sys.prefix); "
            "print(os.environ.get('CUDA_VISIBLE_DEVICES')); print(os.environ.get('MEM_LIMIT')); "
            "print(os.environ.get('CPU_LIMIT'))",
            timeout=120,
        )
        prefix, gpus, mem, cpu = out.split()
        assert os.path.realpath(prefix) == os.path.realpath(alice.home / "projects/thesis/.venv")
        root = call(port, "GET", f"{base}/api/contents").json()  # the server's root is ~/projects
        assert [item["name"] for item in root["content"]] == ["thesis"]
        assert (gpus, mem, cpu) == ("3", str(2 * 2**30), "1.5")

        services = call(port, "GET", "/hub/api/services").json()
        assert "jupyterhub-idle-culler" in services
        culler = [
            p for p in psutil.Process(hub.pid).children() if "jupyterhub_idle_culler" in p.cmdline()
        ]
        assert culler and culler[0].is_running() and "--timeout=86400" in culler[0].cmdline()
        assert (
            " 403 " not in (hubdir / "hub.log").read_text()
        )  # the culler's scopes let it list and cull
    except BaseException:
        log.flush()
        print((hubdir / "hub.log").read_text()[-6000:])
        raise
    finally:
        stop_all(hub)
        log.close()
