"""Shared by the benchmarks: isolated homes, interleaved timing, and the one report format.

Benchmarks time whole commands, as a user would run them, against the manual
way on the same machine, interleaved so drift hits both sides alike.  They
print medians and ratios; they never pass or fail.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from host_env import index_and_trust  # noqa: E402  (tests/, shared with the test accounts)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.node()}: {os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Python {platform.python_version()}"


@contextmanager
def isolated_home() -> Iterator[dict[str, str]]:
    home = Path(tempfile.mkdtemp(prefix="labshare-bench-"))
    env = {
        "HOME": str(home),
        "PATH": f"{BIN}:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        **index_and_trust(),
    }
    for key in ("USER", "LOGNAME", "UV_CACHE_DIR"):
        if key in os.environ:
            env[key] = os.environ[key]
    try:
        yield env
    finally:
        subprocess.run([str(BIN / "labshare"), "stop"], env=env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def timed(action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def compare(
    title: str,
    ours: Callable[[], float],
    manual: Callable[[], float],
    runs: int,
    goal: str,
) -> tuple[float, float]:
    """Run both sides `runs` times, interleaved; print medians and their ratio."""
    a: list[float] = []
    b: list[float] = []
    for i in range(runs):
        first, second = (ours, manual) if i % 2 == 0 else (manual, ours)
        (a if first is ours else b).append(first())
        (b if second is manual else a).append(second())
    ma, mb = statistics.median(a), statistics.median(b)
    print(f"{title}")
    print(f"  labshare  median {ma:.3f} s   runs {', '.join(f'{x:.2f}' for x in a)}")
    print(f"  manual    median {mb:.3f} s   runs {', '.join(f'{x:.2f}' for x in b)}")
    print(f"  ratio     {ma / mb:.2f}x   (goal {goal})")
    return ma, mb
