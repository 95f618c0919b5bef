"""`labshare env create x` against the guide's manual way, with warm caches, interleaved.

The manual way is `python -m venv` + `pip install ipykernel` + `python -m
ipykernel install --user`.  Both run in a fresh HOME each round (so nothing
but the package caches is reused), alternating so that machine load hits both
alike; the median ratio is printed.  Run: `python benchmarks/bench_env.py`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def labshare_bin() -> str:
    sibling = Path(sys.executable).parent / "labshare"
    return str(sibling) if sibling.exists() else (shutil.which("labshare") or "labshare")


def timed(argv_list: list[list[str]], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    for argv in argv_list:
        subprocess.run(
            argv, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    return time.perf_counter() - start


def one_round(kind: str, python: str, caches: Path) -> float:
    home = Path(tempfile.mkdtemp(prefix=f"bench-env-{kind}-"))
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER_", "XDG_", "VIRTUAL_ENV"))
    }
    env.update(
        {
            "HOME": str(home),
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "UV_CACHE_DIR": str(caches / "uv"),
            "PIP_CACHE_DIR": str(caches / "pip"),
            "UV_PYTHON_DOWNLOADS": "never",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
    )
    try:
        if kind == "labshare":
            return timed([[labshare_bin(), "env", "create", "x", "--python", python]], env, home)
        venv = home / "projects" / "x" / ".venv"
        venv.parent.mkdir(parents=True)
        return timed(
            [
                [python, "-m", "venv", str(venv)],
                [str(venv / "bin" / "pip"), "install", "-q", "ipykernel"],
                [
                    str(venv / "bin" / "python"),
                    "-m",
                    "ipykernel",
                    "install",
                    "--user",
                    "--name",
                    "x",
                    "--display-name",
                    "Python (x)",
                ],
            ],
            env,
            home,
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--python",
        default="/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable,
    )
    args = parser.parse_args()
    caches = Path(tempfile.gettempdir()) / "labshare-bench-caches"
    print(f"warming caches in {caches} ...", file=sys.stderr)
    for kind in ("labshare", "manual"):
        one_round(kind, args.python, caches)
    times: dict[str, list[float]] = {"labshare": [], "manual": []}
    for i in range(args.rounds):
        for kind in ("labshare", "manual") if i % 2 == 0 else ("manual", "labshare"):
            times[kind].append(one_round(kind, args.python, caches))
        print(
            f"round {i + 1}: labshare {times['labshare'][-1]:.2f} s, manual {times['manual'][-1]:.2f} s",
            file=sys.stderr,
        )
    ours, theirs = statistics.median(times["labshare"]), statistics.median(times["manual"])
    print(f"labshare env create x             median {ours:6.2f} s  (n={args.rounds})")
    print(f"venv + pip + ipykernel install    median {theirs:6.2f} s  (n={args.rounds})")
    print(f"ratio (manual / labshare)         {theirs / ours:6.1f}x faster")
    print(f"cpus {os.cpu_count()}, python {args.python}")


if __name__ == "__main__":
    main()
