"""Server-side checks: why Jupyter dies at logout, why a port is taken, why two kernels look alike.

Every function takes what it needs as arguments and returns `Check`s; none
prints, changes or stops anything.  Stopping old servers is `stop_old`,
called by the CLI only after the member said yes.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from labshare import __version__
from labshare.doctor import FAIL, OK, WARN, Check, HostFiles
from labshare.errors import LabshareError
from labshare.paths import Paths, socket_path_fits

# (distribution, vulnerable below, unless at least this within the same major, advisory)
VULNERABLE: tuple[tuple[str, str, str | None, str], ...] = (
    ("jupyter-server-proxy", "4.1.1", "3.2.3",
     "CVE-2024-28179: its websocket proxy skips authentication"),
    ("jupyterlab", "4.2.5", "3.6.8", "CVE-2024-43805: HTML injection in the Markdown preview and notebooks"),
    ("jupyter-lsp", "2.2.2", None, "CVE-2024-22415: unauthenticated file access through the LSP endpoint"),
    ("jupyter-server", "2.14.1", None, "CVE-2024-35178: leaks the NTLM hash on Windows"),
)
JUPYTER_DISTS = ("jupyterlab", "jupyter-server", "jupyter-client", "ipykernel")
TOKEN_OPTIONS = ("--NotebookApp.token", "--ServerApp.token", "--IdentityProvider.token", "--token")
JUPYTER_SCRIPTS = {"jupyter-lab", "jupyter-notebook", "jupyter-server", "jupyter-nbclassic"}
JUPYTER_SUBCOMMANDS = {"lab", "notebook", "server", "nbclassic"}
JUPYTER_MODULES = {"jupyterlab", "notebook", "jupyter_server", "nbclassic"}
SUPERVISOR_MARK = "labshare.server.supervise"


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _older(found: str, bound: str) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(found) < Version(bound)
    except InvalidVersion:
        return False


def _is_vulnerable(found: str, fixed: str, backport: str | None) -> bool:
    if not _older(found, fixed):
        return False
    if backport and found.split(".")[0] == backport.split(".")[0]:
        return _older(found, backport)
    return True


def versions() -> list[Check]:
    """labshare, Jupyter's parts, and any installed release with a known hole."""
    out = [Check("labshare", OK, f"labshare {__version__} on Python {sys.version.split()[0]} ({sys.executable})")]
    found = {d: _version(d) for d in JUPYTER_DISTS}
    missing = [d for d, v in found.items() if v is None]
    listed = ", ".join(f"{d} {v}" for d, v in found.items() if v)
    try:
        from labshare.server.launch import find_jupyter_lab

        lab = find_jupyter_lab()
    except LabshareError as exc:
        out.append(Check("jupyter", FAIL, exc.message, "pip install --upgrade labshare"))
    else:
        if missing:
            out.append(Check("jupyter", FAIL, f"missing: {', '.join(missing)} (found {listed})",
                             "pip install --upgrade labshare"))
        else:
            out.append(Check("jupyter", OK, f"{listed}; runs {lab}"))
    holes = []
    for dist, fixed, backport, advisory in VULNERABLE:
        have = _version(dist)
        if have and _is_vulnerable(have, fixed, backport):
            holes.append((dist, have, fixed, advisory))
    if holes:
        detail = "; ".join(f"{d} {have} is vulnerable ({adv})" for d, have, _, adv in holes)
        fix = "pip install --upgrade " + " ".join(f"'{d}>={fixed}'" for d, _, fixed, _ in holes)
        out.append(Check("vulnerable-packages", FAIL, detail, fix))
    else:
        out.append(Check("vulnerable-packages", OK, "no installed package has a known advisory labshare checks for"))
    return out


def _private_problem(path: Path, uid: int) -> str | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return f"{path} is a symlink"
    if st.st_uid != uid:
        return f"{path} belongs to uid {st.st_uid}, not you"
    if stat.S_IMODE(st.st_mode) & 0o077:
        return f"{path} is mode {stat.S_IMODE(st.st_mode):04o}, readable by others"
    return None


def private_dirs(paths: Paths) -> Check:
    """The state, runtime and socket directories must be 0700 and ours: they hold the token and the socket."""
    places = [paths.state_root, paths.state_dir, paths.runtime_dir, paths.kernel_records_dir,
              paths.preferred_socket.parent, paths.fallback_socket.parent, paths.token_file]
    problems = [p for p in (_private_problem(place, paths.uid) for place in places) if p]
    if problems:
        bad = [place for place in places if _private_problem(place, paths.uid)]
        return Check("private-dirs", FAIL, "; ".join(problems),
                     "chmod go-rwx " + " ".join(shlex.quote(str(b)) for b in bad)
                     + " (or remove what is not yours, then `labshare start`)")
    if not paths.state_dir.exists():
        return Check("private-dirs", OK, f"{paths.state_dir} does not exist yet; `labshare start` makes it 0700")
    return Check("private-dirs", OK, f"{paths.state_dir} and what is under it are private to you")


def socket_path(paths: Paths) -> Check:
    """A Unix socket path over 107 bytes cannot be bound; labshare then moves it to /tmp."""
    size = len(os.fsencode(paths.preferred_socket))
    if socket_path_fits(paths.preferred_socket):
        return Check("socket-path", OK, f"{paths.preferred_socket} ({size} bytes, the limit is 107)")
    fix = "export XDG_STATE_HOME=~/.local/state (or another short path) in your shell profile"
    if socket_path_fits(paths.fallback_socket):
        return Check("socket-path", WARN,
                     f"{paths.preferred_socket} is {size} bytes, over the 107 a socket path may have; "
                     f"labshare uses {paths.fallback_socket} instead", fix)
    return Check("socket-path", FAIL,
                 f"neither {paths.preferred_socket} nor {paths.fallback_socket} fits in 107 bytes", fix)


Entry = tuple[Path, str]


def _read_lines(path: Path, unreadable: list[Path]) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []
    except OSError:
        unreadable.append(path)
        return []


def _lookup(entries: list[Entry], key: str, first_wins: bool) -> tuple[str | None, Path | None]:
    """The value of `key` among config lines (sshd: first wins; systemd: last wins); Match blocks end the search."""
    value: tuple[str | None, Path | None] = (None, None)
    for path, line in entries:
        text = line.strip()
        if not text or text.startswith(("#", ";", "[")):
            continue
        if text.lower().startswith("match "):
            break
        m = re.match(r"^(\S+?)\s*(?:=|\s)\s*(.*)$", text)
        if m and m.group(1).lower() == key.lower():
            if first_wins and value[0] is not None:
                continue
            value = (m.group(2).strip(), path)
    return value


def _conf_values(files: list[Path], key: str, first_wins: bool) -> tuple[str | None, Path | None, list[Path]]:
    unreadable: list[Path] = []
    entries = [(path, line) for path in files for line in _read_lines(path, unreadable)]
    value, where = _lookup(entries, key, first_wins)
    return value, where, unreadable


def _logind_files(main: Path) -> list[Path]:
    dirs = [main.parent / "logind.conf.d"]
    if main == HostFiles.logind_config:
        dirs = [Path("/usr/lib/systemd/logind.conf.d"), Path("/run/systemd/logind.conf.d"), *dirs]
    drop_ins = sorted({p.name: p for d in dirs for p in sorted(d.glob("*.conf"))}.values(), key=lambda p: p.name)
    return [main, *drop_ins]


def survives_logout(files: HostFiles, user: str) -> Check:
    """systemd-logind with KillUserProcesses=yes ends every process of a user at logout unless they linger."""
    kill, where, unreadable = _conf_values(_logind_files(files.logind_config), "KillUserProcesses", first_wins=False)
    excluded, _, _ = _conf_values(_logind_files(files.logind_config), "KillExcludeUsers", first_wins=False)
    lingering = (files.linger_dir / user).exists()
    if (kill or "").lower() in ("yes", "true", "1", "on"):
        if lingering:
            return Check("survives-logout", OK,
                         f"KillUserProcesses=yes ({where}), but {user} lingers, so labshare keeps running")
        if excluded and user in excluded.split():
            return Check("survives-logout", OK, f"KillUserProcesses=yes ({where}), but {user} is in KillExcludeUsers")
        return Check("survives-logout", FAIL,
                     f"KillUserProcesses=yes in {where}: logging out kills your JupyterLab and its kernels",
                     f"loginctl enable-linger {user}")
    if unreadable:
        return Check("survives-logout", WARN, f"cannot read {', '.join(map(str, unreadable))}",
                     f"ask an admin whether KillUserProcesses is set; if so run `loginctl enable-linger {user}`")
    said = f"KillUserProcesses={kill} ({where})" if kill else "KillUserProcesses is not set (the distribution's default, no)"
    return Check("survives-logout", OK, f"{said}: your server outlives your ssh session")


def _sshd_entries(main: Path, unreadable: list[Path]) -> list[Entry]:
    """sshd_config's lines with its Includes expanded in place (relative names are under /etc/ssh)."""

    def walk(path: Path, depth: int) -> list[Entry]:
        out: list[Entry] = []
        for line in _read_lines(path, unreadable):
            words = line.split()
            if depth < 8 and len(words) >= 2 and words[0].lower() == "include":
                for pattern in words[1:]:
                    if not os.path.isabs(pattern):
                        pattern = str(main.parent / pattern)
                    for found in sorted(glob.glob(pattern)):
                        out += walk(Path(found), depth + 1)
            else:
                out.append((path, line))
        return out

    return walk(main, 0)


def _sshd_t(config: Path, user: str) -> dict[str, str] | None:
    """`sshd -T` (the effective settings for this user) where it can run, which needs the host keys."""
    sshd = shutil.which("sshd", path="/usr/sbin:/usr/local/sbin:/sbin:" + os.environ.get("PATH", ""))
    if not sshd:
        return None
    try:
        done = subprocess.run([sshd, "-T", "-f", str(config), "-C", f"user={user},host=localhost,addr=127.0.0.1"],
                              capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    settings: dict[str, str] = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition(" ")
        settings.setdefault(key.lower(), value.strip().lower())
    return settings


def sshd_forwarding(files: HostFiles, user: str, mode: str = "socket") -> Check:
    """`labshare connect` forwards a local port to the server's Unix socket: sshd must allow it."""
    config = files.sshd_config
    if not config.exists():
        return Check("sshd-forwarding", WARN, f"no {config} on this host, so its sshd settings are unknown",
                     "run `labshare doctor HOST` from your laptop to test forwarding end to end")
    settings = _sshd_t(config, user)
    source, via = "sshd -T", " (sshd -T)"
    if settings is None:
        unreadable: list[Path] = []
        entries = _sshd_entries(config, unreadable)
        settings = {}
        for key in ("allowstreamlocalforwarding", "disableforwarding", "allowtcpforwarding"):
            value, where = _lookup(entries, key, first_wins=True)
            if value is not None:
                settings[key] = f"{value.lower()} ({where})"
        if unreadable:
            return Check("sshd-forwarding", WARN, f"cannot read {', '.join(map(str, sorted(set(unreadable))))}",
                         "run `labshare doctor HOST` from your laptop to test forwarding end to end")
        source, via = str(config), ""
    disable = settings.get("disableforwarding", "no").split()[0]
    stream = settings.get("allowstreamlocalforwarding", "yes").split()[0]
    tcp = settings.get("allowtcpforwarding", "yes").split()[0]
    if disable == "yes":
        return Check("sshd-forwarding", FAIL,
                     f"DisableForwarding {settings['disableforwarding']}{via}: sshd forwards nothing, "
                     "so `labshare connect` cannot reach your server",
                     "ask the admin to remove DisableForwarding for members (labshare needs -L forwarding only)")
    if stream in ("no", "remote"):
        fix = ("ask the admin to set `AllowStreamLocalForwarding local` in sshd_config, "
               "or use `labshare start --tcp` on this host")
        status = FAIL if mode == "socket" else WARN
        return Check("sshd-forwarding", status,
                     f"AllowStreamLocalForwarding {settings['allowstreamlocalforwarding']}{via}: "
                     "forwarding to the server's Unix socket is refused", fix)
    if mode == "tcp" and tcp in ("no", "remote"):
        return Check("sshd-forwarding", FAIL, f"AllowTcpForwarding {settings['allowtcpforwarding']}{via} "
                     "but your server listens on TCP", "run `labshare restart` without --tcp, or ask the admin")
    return Check("sshd-forwarding", OK, f"sshd allows forwarding to Unix sockets ({source})")


def uv_available() -> Check:
    """`labshare env` drives uv; it comes with labshare from PyPI, else from PATH."""
    from labshare.envs.projects import uv_bin

    try:
        uv = uv_bin()
    except LabshareError as exc:
        return Check("uv", FAIL, exc.message, "pip install --upgrade labshare  (or: pip install uv)")
    try:
        done = subprocess.run([uv, "--version"], capture_output=True, text=True, timeout=20,
                              stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("uv", FAIL, f"{uv} does not run ({exc})", "pip install --force-reinstall uv")
    if done.returncode != 0:
        return Check("uv", FAIL, f"{uv} --version failed", "pip install --force-reinstall uv")
    return Check("uv", OK, f"{done.stdout.strip()} ({uv})")


def kernel_path() -> Check:
    """Which kernels Jupyter offers, which directory wins a name, and what is stale, shadowed or doubled."""
    from labshare.envs import kernels as ks

    places = ks.KernelPlaces.current()
    entries = ks.list_kernels(places)
    order = " > ".join(str(p) for p in places.search[:4]) + (" > ..." if len(places.search) > 4 else "")
    stale = [e for e in entries if e.status == ks.STALE]
    shadowed = [e for e in entries if e.status == ks.SHADOWED]
    dup = [e for e in entries if e.status == ks.DUPLICATE]
    head = f"{len(entries)} kernelspec(s); search order, first wins: {order}"
    if not (stale or shadowed or dup):
        return Check("kernels", OK, head)
    parts = []
    fixes = []
    if stale:
        parts.append("stale: " + ", ".join(f"{e.name} ({'; '.join(e.problems)})" for e in stale))
        own = any(e.owner == "labshare" for e in stale)
        foreign = any(e.owner != "labshare" for e in stale)
        if own:
            fixes.append("labshare kernels prune")
        if foreign:
            fixes.append("labshare kernels prune --foreign")
    if shadowed:
        parts.append("shadowed: " + ", ".join(f"{e.resource_dir} ({e.problems[-1]})" for e in shadowed))
        fixes.append("remove the hidden copy, or `labshare env list` to see which one Jupyter uses")
    if dup:
        parts.append("same label twice: " + ", ".join(sorted({e.display_name for e in dup})))
        fixes.append("`labshare env adopt PROJECT` re-registers a project with a distinct label")
    return Check("kernels", WARN, head + "; " + "; ".join(parts), "; ".join(dict.fromkeys(fixes)))


def gpu() -> Check:
    """The NVIDIA driver answers through NVML (what GPU limits and hub-config rely on)."""
    driver_present = Path("/proc/driver/nvidia/version").exists() or bool(shutil.which("nvidia-smi"))
    try:
        import pynvml  # from nvidia-ml-py, the `gpu` extra
    except ImportError:
        if driver_present:
            return Check("gpu", WARN, "an NVIDIA driver is installed but nvidia-ml-py is not",
                         "pip install 'labshare[gpu]'")
        return Check("gpu", OK, "no NVIDIA GPU on this host")
    try:
        driver, names = _read_nvml()
    except (pynvml.NVMLError, OSError) as exc:
        if not driver_present:
            return Check("gpu", OK, "no NVIDIA GPU on this host")
        return Check("gpu", FAIL, f"the NVIDIA driver does not answer through NVML ({exc})",
                     "ask the admin: the driver and the kernel module may not match (a reboot after an update)")
    if not names:
        return Check("gpu", OK, f"NVIDIA driver {driver}, no GPU visible")
    return Check("gpu", OK, f"NVIDIA driver {driver}, {len(names)} GPU(s): {', '.join(names)}")


def _read_nvml() -> tuple[str, list[str]]:
    import pynvml

    pynvml.nvmlInit()
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        count = pynvml.nvmlDeviceGetCount()
        names = []
        for i in range(count):
            name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i))
            names.append(name.decode() if isinstance(name, bytes) else str(name))
        return (driver.decode() if isinstance(driver, bytes) else str(driver)), names
    finally:
        pynvml.nvmlShutdown()


def site_policy(paths: Paths, user: str, environ: Mapping[str, str]) -> list[Check]:
    """The admin's policy as it applies to this member, and the parts this host cannot enforce."""
    from labshare import config
    from labshare.server.launch import systemd_user_manager

    try:
        site, policy = config.effective(paths.site_config, paths.user_config_file, user)
    except LabshareError as exc:
        return [Check("site-policy", FAIL, exc.message, "fix the file named above (the admin owns the site config)")]
    where = str(site.path) if site.path else f"no site config at {paths.site_config}, defaults"
    lim = policy.limits
    bits = [f"mode {policy.mode}", f"folder {policy.root_dir}"]
    if policy.port:
        bits.append(f"port {policy.port}")
    bits.append("GPUs " + (",".join(map(str, lim.gpus)) if lim.gpus is not None else "all"))
    bits.append(f"memory {lim.memory_max or 'no limit'}")
    bits.append(f"CPUs {lim.cpus:g}" if lim.cpus else "CPUs no limit")
    if policy.cull_idle_kernels_after:
        bits.append(f"idle kernels culled after {int(policy.cull_idle_kernels_after)} s")
    if policy.shutdown_idle_server_after:
        bits.append(f"idle server stopped after {int(policy.shutdown_idle_server_after)} s")
    out = [Check("site-policy", OK, f"{where}: " + ", ".join(bits))]
    unenforced = []
    if (lim.memory_max or lim.cpus) and not systemd_user_manager(environ):
        unenforced.append("the memory/CPU limits (no systemd user manager for you here)")
    if lim.gpus is not None:
        unenforced.append("the GPU list, which is CUDA_VISIBLE_DEVICES for your kernels, a convention, not a wall")
    if unenforced:
        fix = f"loginctl enable-linger {user}, then log in again and `labshare restart`" \
            if (lim.memory_max or lim.cpus) and not systemd_user_manager(environ) else None
        out.append(Check("policy-enforcement", WARN, "not enforced on this host: " + "; ".join(unenforced), fix))
    else:
        out.append(Check("policy-enforcement", OK, "every limit that applies to you is enforced here"))
    return out


def kernel_survival(paths: Paths) -> Check:
    """Kernels outlive a server crash or restart only through labshare's provisioner and kernel manager."""
    import json
    from importlib import metadata

    from labshare.server.records import PROVISIONER_NAME

    eps = [ep for ep in metadata.entry_points(group="jupyter_client.kernel_provisioners")
           if ep.name == PROVISIONER_NAME]
    if not eps:
        return Check("kernel-survival", FAIL,
                     f"the {PROVISIONER_NAME} entry point is not installed, so kernels die with the server",
                     "pip install --force-reinstall labshare")
    try:
        argv = json.loads(paths.launch_file.read_text()).get("argv", [])
    except (OSError, ValueError):
        return Check("kernel-survival", OK, f"installed ({eps[0].value}); active from the next `labshare start`")
    if any("labshare.server.survive.LabshareKernelManager" in a for a in argv):
        return Check("kernel-survival", OK, "active: your kernels survive a crash or restart of the server")
    return Check("kernel-survival", WARN, "your server was started by an older labshare, without kernel survival",
                 "labshare restart")


def output_keeping(paths: Paths) -> Check:
    """Output printed while no browser is open is kept only where cells run on the server side."""
    import json
    from importlib.util import find_spec

    missing = [m for m in ("jupyter_server_ydoc", "jupyter_server_nbmodel") if find_spec(m) is None]
    if missing:
        return Check("output-keeping", FAIL,
                     f"{' and '.join(missing)} are not installed, so output printed while no browser is open is lost",
                     "pip install --force-reinstall labshare")
    try:
        argv = json.loads(paths.launch_file.read_text()).get("argv", [])
    except (OSError, ValueError):
        return Check("output-keeping", OK, "installed; active from the next `labshare start` unless turned off")
    if "--OutputKeeper.keep=True" in argv:
        return Check("output-keeping", OK, "active: output printed while no browser is open is kept in the notebook")
    if "--OutputKeeper.keep=False" in argv:
        return Check("output-keeping", OK,
                     "off for this server (--no-keep-outputs or the site policy): output printed while "
                     "no browser is open is lost")
    return Check("output-keeping", WARN, "your server was started by an older labshare, without output keeping",
                 "labshare restart")


@dataclass(frozen=True)
class OldServer:
    """A Jupyter started by hand with an empty token: anyone on this host can run code as its owner."""

    pid: int
    cmdline: str
    port: str | None


def _is_jupyter_server(argv: list[str]) -> bool:
    names = [os.path.basename(a) for a in argv[:3]]
    if any(n in JUPYTER_SCRIPTS for n in names):
        return True
    for i, n in enumerate(names):
        if n == "jupyter" and i + 1 < len(argv) and argv[i + 1] in JUPYTER_SUBCOMMANDS:
            return True
        if n.startswith("python") and i + 2 < len(argv) and argv[i + 1] == "-m" and argv[i + 2] in JUPYTER_MODULES:
            return True
    return False


def _empty_token(argv: list[str]) -> bool:
    for i, arg in enumerate(argv):
        for opt in TOKEN_OPTIONS:
            if arg.startswith(opt + "="):
                if arg[len(opt) + 1:].strip("'\"") == "":
                    return True
            elif arg == opt and i + 1 < len(argv) and argv[i + 1].strip("'\"") == "":
                return True
    return False


def _port_of(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        for opt in ("--port", "--ServerApp.port", "--NotebookApp.port"):
            if arg.startswith(opt + "="):
                return arg.split("=", 1)[1]
            if arg == opt and i + 1 < len(argv):
                return argv[i + 1]
    return None


def _under_labshare(proc: object) -> bool:
    import psutil

    try:
        for parent in proc.parents():  # type: ignore[attr-defined]
            if any(SUPERVISOR_MARK in a for a in parent.cmdline()):
                return True
    except psutil.Error:
        return False
    return False


def find_old_servers(uid: int) -> list[OldServer]:
    """This user's token-less Jupyter servers that labshare did not start (found by command line)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "uids", "cmdline"]):
        try:
            uids, argv = proc.info["uids"], proc.info["cmdline"] or []
            if uids is None or uids.real != uid or not _is_jupyter_server(argv) or not _empty_token(argv):
                continue
            if _under_labshare(proc):
                continue
            found.append(OldServer(pid=proc.pid, cmdline=shlex.join(argv), port=_port_of(argv)))
        except psutil.Error:
            continue
    return sorted(found, key=lambda s: s.pid)


def old_servers(found: list[OldServer]) -> Check:
    if not found:
        return Check("old-servers", OK, "no hand-started token-less Jupyter of yours is running")
    listed = "; ".join(f"pid {s.pid}" + (f" on port {s.port}" if s.port else "") + f": {s.cmdline[:120]}"
                       for s in found)
    return Check("old-servers", FAIL,
                 f"{len(found)} Jupyter server(s) without a token: any account here can run code as you ({listed})",
                 "labshare doctor --stop-old (asks first), then use `labshare start`")


def stop_old(servers: list[OldServer], uid: int, grace: float = 10.0) -> list[int]:
    """End the given servers by pid (SIGTERM, then SIGKILL), re-checking each is still the one we found."""
    import psutil

    procs = []
    for s in servers:
        try:
            proc = psutil.Process(s.pid)
            if proc.uids().real == uid and shlex.join(proc.cmdline()) == s.cmdline:
                proc.send_signal(signal.SIGTERM)
                procs.append(proc)
        except psutil.Error:
            continue
    alive = _wait_gone(procs, grace)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    _wait_gone(alive, grace)
    return [p.pid for p in procs]


def _wait_gone(procs: list[object], timeout: float) -> list[object]:
    """Wait until each process has exited; an unreaped zombie (its parent is not us) counts as gone."""
    import time

    import psutil

    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for proc in procs:
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:  # type: ignore[attr-defined]
                    alive.append(proc)
            except psutil.Error:
                continue
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def current_user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return os.environ.get("USER", str(uid))


def server_mode(paths: Paths) -> str:
    """The running server's mode, so the sshd check asks about the forwarding it really needs."""
    import json

    try:
        return str(json.loads(paths.state_file.read_text()).get("mode") or "socket")
    except (OSError, ValueError):
        return "socket"


def run_all(paths: Paths, files: HostFiles, environ: Mapping[str, str]) -> list[Check]:
    user = current_user(paths.uid)
    checks = versions()
    checks += [private_dirs(paths), socket_path(paths), survives_logout(files, user),
               sshd_forwarding(files, user, server_mode(paths)), uv_available(), kernel_path(), gpu()]
    checks += site_policy(paths, user, environ)
    checks.append(kernel_survival(paths))
    checks.append(output_keeping(paths))
    checks.append(old_servers(find_old_servers(paths.uid)))
    return checks
