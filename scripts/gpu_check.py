"""The one short check of labshare's GPU code on a machine with a real NVIDIA card (issue 14).

The test suite runs the real nvidia-ml-py against a stand-in NVML; this
checks the same paths against the real driver, with a real CUDA process:

1. a member's server (TCP, a throwaway HOME, leases per kernel in a
   throwaway leases dir) starts a kernel, which takes a lease;
2. the kernel allocates 1 GiB through the CUDA driver API (libcuda.so.1,
   which every NVIDIA driver ships: no CUDA toolkit or package index
   needed) and says which card CUDA gave it;
3. that card's UUID must be the leased one and the one in the kernel's
   CUDA_VISIBLE_DEVICES, and `labshare gpus --json` and `labshare ps --json`
   must show the lease and the kernel's GPU memory;
4. `labshare run --gpus N` for every card the machine has is refused while
   the kernel holds one (exclusive); once the kernel is shut down it runs
   the same allocation under its own lease.

Run as root (the leases dir is root's, 1777), with a Python that has
labshare's requirements and ipykernel, `labshare` on PATH:

    python3 scripts/gpu_check.py [--out DIR]

It prints each command's output and writes them to DIR/gpu-check.log, the
verdicts to DIR/summary.txt; it exits 1 if any check fails.  It never touches the machine's own
/etc/labshare or /var/lib/labshare.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ALLOCATE = r"""
import ctypes, json
cuda = ctypes.CDLL("libcuda.so.1")
def ok(code, what):
    if code:
        raise RuntimeError(f"{what} returned CUDA error {code}")
ok(cuda.cuInit(0), "cuInit")
count = ctypes.c_int()
ok(cuda.cuDeviceGetCount(ctypes.byref(count)), "cuDeviceGetCount")
device = ctypes.c_int()
ok(cuda.cuDeviceGet(ctypes.byref(device), 0), "cuDeviceGet")
raw = (ctypes.c_ubyte * 16)()
ok(cuda.cuDeviceGetUuid(raw, device), "cuDeviceGetUuid")
h = bytes(raw).hex()
uuid = f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
context = ctypes.c_void_p()
ok(cuda.cuCtxCreate_v2(ctypes.byref(context), 0, device), "cuCtxCreate")
held = ctypes.c_uint64()
ok(cuda.cuMemAlloc_v2(ctypes.byref(held), 1 << 30), "cuMemAlloc")
print(json.dumps({"visible_devices": count.value, "uuid": uuid, "allocated": 1 << 30}))
"""


class Check:
    """What ran, what it printed, and which expectations held."""

    def __init__(self, out: Path):
        self.out = out
        self.failed: list[str] = []
        self.lines: list[str] = []

    def expect(self, holds: bool, what: str) -> None:
        self.lines.append(f"{'ok  ' if holds else 'FAIL'} {what}")
        print(self.lines[-1], flush=True)
        if not holds:
            self.failed.append(what)

    def run(self, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        shown = " ".join("<the allocation>" if arg == ALLOCATE else arg for arg in argv)
        text = f"$ {shown}  (exit {done.returncode})\n{done.stdout}{done.stderr}"
        with open(self.out / "gpu-check.log", "a", encoding="utf-8") as log:
            log.write(text + "\n")
        print(text, flush=True)
        return done


def api(
    port: int, token: str, method: str, path: str, body: Any = None
) -> tuple[int, Any, dict[str, str]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        method=method,
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            text = answer.read()
            return answer.status, json.loads(text) if text else None, dict(answer.headers)
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode(errors="replace"), dict(refused.headers)


def execute(port: int, token: str, kernel: str, code: str) -> dict[str, Any]:
    """Run `code` through server-side execution (output keeping's endpoint) and wait for its result."""
    status, body, headers = api(
        port, token, "POST", f"/api/kernels/{kernel}/execute", {"code": code}
    )
    if status != 202:
        raise SystemExit(f"the server refused to run the cell ({status}): {body}")
    where = headers.get("Location") or body["request_url"]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status, body, _ = api(port, token, "GET", where)
        if status != 202:
            return {"status": status, **(body if isinstance(body, dict) else {"body": body})}
        time.sleep(0.2)
    raise SystemExit("the cell did not finish within 300 s")


def _outputs(result: dict[str, Any]) -> list[dict[str, Any]]:
    outputs = result.get("outputs", [])
    return json.loads(outputs) if isinstance(outputs, str) else outputs


def printed(result: dict[str, Any]) -> str:
    return "".join(o.get("text", "") for o in _outputs(result) if o.get("output_type") == "stream")


def failure(result: dict[str, Any]) -> str:
    errors = [
        f"{o['ename']}: {o['evalue']}" for o in _outputs(result) if o.get("output_type") == "error"
    ]
    return "; ".join(errors) or str(result)


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


def setup(work: Path) -> dict[str, str]:
    """A throwaway member home, site config and leases dir; the environment labshare runs in."""
    leases = work / "leases"
    leases.mkdir(mode=0o1777)
    leases.chmod(0o1777)
    site = work / "site.toml"
    site.write_text(f'[gpus]\nassign = "per-kernel"\nleases_dir = "{leases}"\n')
    home = work / "home"
    kernels = home / ".local/share/jupyter/kernels/gpucheck"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "GPU check",
                "language": "python",
            }
        )
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LABSHARE_SITE", "JUPYTER_", "CUDA_"))
    }
    env.update({"HOME": str(home), "LABSHARE_SITE_CONFIG": str(site), "XDG_RUNTIME_DIR": ""})
    return env


def leased_kernel(check: Check, env: dict[str, str], port: int, token: str) -> None:
    status, kernel, _ = api(port, token, "POST", "/api/kernels", {"name": "gpucheck"})
    check.expect(
        status == 201,
        f"a kernel starts with a lease (HTTP {status}: {kernel if status != 201 else 'ok'})",
    )
    if status != 201:
        return
    kernel_id = kernel["id"]
    result = execute(port, token, kernel_id, ALLOCATE)
    text = printed(result).strip()
    seen = json.loads(text.splitlines()[-1]) if text else {}
    check.expect(bool(seen), f"the kernel allocated 1 GiB through CUDA ({seen or failure(result)})")
    gpus = json.loads(check.run(env, "labshare", "gpus", "--json").stdout)
    check.run(env, "labshare", "gpus")
    leased = [
        (card["uuid"], lease)
        for card in gpus["cards"]
        for lease in card["leases"]
        if lease.get("kernel_id") == kernel_id and not lease.get("stale")
    ]
    check.expect(
        len(leased) == 1, f"labshare gpus shows one live lease for the kernel ({len(leased)})"
    )
    servers = json.loads(check.run(env, "labshare", "ps", "--json").stdout)
    check.run(env, "labshare", "ps")
    mine = [k for s in servers for k in s["kernels"] if k.get("kernel_id") == kernel_id]
    if leased and mine and seen:
        uuid = leased[0][0]
        visible = environ(mine[0]["pid"]).get("CUDA_VISIBLE_DEVICES")
        check.expect(seen["visible_devices"] == 1, "CUDA sees exactly one card in the kernel")
        check.expect(
            seen["uuid"] == uuid, f"CUDA's card is the leased one ({seen['uuid']} vs {uuid})"
        )
        check.expect(
            visible == uuid, f"the kernel's CUDA_VISIBLE_DEVICES is the lease's UUID ({visible})"
        )
        check.expect(
            (mine[0]["gpu_memory_bytes"] or 0) >= 1 << 30,
            f"labshare ps shows the kernel's GPU memory ({mine[0]['gpu_memory_bytes']} bytes)",
        )
        check.expect(
            [g["uuid"] for g in mine[0]["gpu_lease"]] == [uuid],
            "labshare ps shows the kernel's lease",
        )
    cards = len(gpus["cards"])
    refused = check.run(
        env, "labshare", "run", "--gpus", str(cards), "--", sys.executable, "-c", ALLOCATE
    )
    check.expect(
        refused.returncode != 0 and "leased to" in refused.stderr,
        f"labshare run --gpus {cards} is refused while the kernel holds a card, naming its holder",
    )
    api(port, token, "DELETE", f"/api/kernels/{kernel_id}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path("gpu-check-out"), help="where the outputs go"
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit(
            "gpu_check: run it as root: the leases dir must be root's, with mode 1777."
        )
    try:
        import ipykernel  # noqa: F401
    except ImportError:
        raise SystemExit(
            f"gpu_check: {sys.executable} has no ipykernel; run it with labshare's own Python."
        ) from None
    args.out.mkdir(parents=True, exist_ok=True)
    check = Check(args.out)
    work = Path(tempfile.mkdtemp(prefix="labshare-gpu-check-"))
    env = setup(work)
    try:
        check.run(env, "labshare", "--version")
        check.run(env, "labshare", "doctor")
        check.expect(
            check.run(env, "labshare", "start", "--tcp").returncode == 0, "the server starts"
        )
        info = json.loads(
            subprocess.run(
                ["labshare", "info", "--json"], env=env, capture_output=True, text=True, check=True
            ).stdout
        )
        leased_kernel(check, env, info["port"], info["token"])
        after = check.run(
            env, "labshare", "run", "--gpus", "1", "--", sys.executable, "-c", ALLOCATE
        )
        check.expect(
            after.returncode == 0 and '"allocated"' in after.stdout,
            "labshare run --gpus 1 allocates under its own lease once the kernel is gone",
        )
    finally:
        check.run(env, "labshare", "stop")
        shutil.rmtree(work, ignore_errors=True)
    summary = (
        "\n".join(check.lines) + f"\n{len(check.failed)} of {len(check.lines)} checks failed\n"
    )
    (args.out / "summary.txt").write_text(summary)
    print(summary, end="")
    sys.exit(1 if check.failed else 0)


if __name__ == "__main__":
    main()
