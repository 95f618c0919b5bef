"""A stand-in NVML for tests that run the real nvidia-ml-py: the C stub, and the file it serves.

No test machine has a GPU, and patching pynvml would test a copy of its API,
not the library.  So `nvml_stub` compiles tests/nvml_stub/nvml_stub.c into a
`libnvidia-ml.so.1` once per session, and `fake_nvml` gives a test the file
that stub reads (cards, their memory and utilisation, the processes on them);
`FakeNvml.env` is what a process needs to see those cards through the real
pynvml.  The file is rewritten atomically, so a running reader sees the old
cards or the new ones, never half a file.

Test modules import these fixtures by name (`from fake_gpus import ...`);
tests/conftest.py is not theirs to change.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

STUB_SOURCE = Path(__file__).parent / "nvml_stub" / "nvml_stub.c"
FILE_VARIABLE = "LABSHARE_FAKE_NVML"
MIB = 1 << 20


@dataclass
class Card:
    """One fake board, as a `gpu` line of the stub's file says it."""

    uuid: str
    name: str
    bus_id: str
    total_mib: int
    used_mib: int = 0
    util: int | None = 0  # None: the board has no utilisation counters (MIG, some vGPUs)
    mem_util: int = 0
    reserved_mib: int = 0

    def line(self) -> str:
        util = "-" if self.util is None else str(self.util)
        return (
            f'gpu {self.uuid} "{self.name}" {self.bus_id} {self.total_mib} {self.used_mib} {util} '
            f"mem={self.mem_util} reserved={self.reserved_mib}"
        )


@dataclass
class GpuProc:
    """One process on a fake board: a `proc` line (and one per-process utilisation sample)."""

    gpu: int
    pid: int
    used_mib: int | None = 0  # None: the driver does not say (pynvml gives None)
    sm: int = 0
    kind: str = "compute"  # compute, graphics or both
    seen_us: int | None = None  # when the sample was taken; None: at each read
    mem: int = 0
    gi: int | None = None
    ci: int | None = None

    def line(self) -> str:
        used = "-" if self.used_mib is None else str(self.used_mib)
        words = [f"proc {self.gpu} {self.pid} {used} {self.sm} {self.kind} mem={self.mem}"]
        words += [
            f"{k}={v}"
            for k, v in (("seen", self.seen_us), ("gi", self.gi), ("ci", self.ci))
            if v is not None
        ]
        return " ".join(words)


def cards(count: int, *, total_mib: int = 81920, name: str = "NVIDIA A100-SXM4-80GB") -> list[Card]:
    """`count` boards with UUIDs and bus ids like real ones, in PCI bus order."""
    return [
        Card(
            uuid=f"GPU-{i:08x}-1111-2222-3333-{0xABCDEF000000 + i:012x}",
            name=name,
            bus_id=f"00000000:{0x1B + 0x20 * i:02X}:00.0",
            total_mib=total_mib,
        )
        for i in range(count)
    ]


@dataclass
class FakeNvml:
    """What the stub serves to every process given `env`; change it, then `write()`."""

    lib_dir: Path
    path: Path
    cards: list[Card] = field(default_factory=list)
    procs: list[GpuProc] = field(default_factory=list)
    driver: str = "550.54.15"
    nvml: str = "12.550.54.15"
    cuda: int = 12040

    @property
    def env(self) -> dict[str, str]:
        return {"LD_LIBRARY_PATH": str(self.lib_dir), FILE_VARIABLE: str(self.path)}

    def text(self) -> str:
        lines = [f"driver {self.driver}", f"nvml {self.nvml}", f"cuda {self.cuda}"]
        lines += [c.line() for c in self.cards] + [p.line() for p in self.procs]
        return "\n".join(lines) + "\n"

    def write(self, text: str | None = None) -> None:
        """Replace the file in one rename (or with `text` as it stands, e.g. a broken line)."""
        scratch = self.path.with_name(self.path.name + ".new")
        scratch.write_text(self.text() if text is None else text)
        scratch.chmod(0o644)
        os.replace(scratch, self.path)

    def remove(self) -> None:
        """As if the driver were gone: the stub's init fails with Driver Not Loaded."""
        self.path.unlink(missing_ok=True)


def _shared_dir(prefix: str) -> Path:
    """A temp dir other test accounts may read (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def nvml_stub() -> Iterator[Path]:
    """The directory holding the compiled stand-in `libnvidia-ml.so.1`, built once per session."""
    compiler = shutil.which("cc")
    if compiler is None:
        if os.environ.get("CI"):
            pytest.fail("the NVML stub needs a C compiler (cc) in CI")
        pytest.skip("no C compiler (cc) to build the NVML stub")
    lib_dir = _shared_dir("labshare-nvml-")
    library = lib_dir / "libnvidia-ml.so.1"
    done = subprocess.run(
        [
            compiler,
            "-shared",
            "-fPIC",
            "-O2",
            "-std=gnu11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-o",
            str(library),
            str(STUB_SOURCE),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"building the NVML stub failed:\n{done.stderr}"
    library.chmod(0o755)
    try:
        yield lib_dir
    finally:
        shutil.rmtree(lib_dir, ignore_errors=True)


@pytest.fixture
def fake_nvml(nvml_stub: Path) -> Iterator[FakeNvml]:
    """Four idle A100s, no processes; a test changes `cards`/`procs` and calls `write()`."""
    where = _shared_dir("labshare-gpus-")
    fake = FakeNvml(lib_dir=nvml_stub, path=where / "nvml.txt", cards=cards(4))
    fake.write()
    try:
        yield fake
    finally:
        shutil.rmtree(where, ignore_errors=True)


@pytest.fixture
def leases_dir() -> Iterator[Path]:
    """A GPU leases directory as the admin makes it: root-owned, sticky, world-writable (1777)."""
    where = _shared_dir("labshare-leases-")
    path = where / "gpus"
    path.mkdir()
    path.chmod(0o1777)
    assert stat.S_IMODE(path.stat().st_mode) == 0o1777
    try:
        yield path
    finally:
        shutil.rmtree(where, ignore_errors=True)
