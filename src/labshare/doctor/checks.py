"""Server-side checks: why Jupyter dies at logout, why a port is taken, why two kernels look alike.

Every function takes what it needs as arguments and returns `Check`s; none
prints, changes or stops anything.  The parts with a job of their own live
beside this file: `versions` (and its advisory table), `private`,
`hostconf` (how logind and sshd read their files) and `old_servers`
(found here, stopped by `stop_old` only after the member said yes).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from labshare import proc
from labshare.doctor import FAIL, OK, WARN, Check, gpu_check, hostconf, notices
from labshare.doctor.old_servers import find_old_servers, old_servers
from labshare.doctor.private import private_dirs, socket_path
from labshare.doctor.projects import project_settings
from labshare.doctor.versions import versions
from labshare.errors import LabshareError
from labshare.gpus import nvml as gpus
from labshare.install_hint import upgrade_command
from labshare.paths import Paths
from labshare.server import state as st
from labshare.server.status import running_hub_server
from labshare.users import enable_linger, has_logind, lingers, user_name


def survives_logout(paths: Paths, user: str) -> Check:
    """systemd-logind with KillUserProcesses=yes ends every process of a user at logout unless they linger."""
    kill, where, unreadable = hostconf.logind_value(paths.logind_config, "KillUserProcesses")
    excluded, _, _ = hostconf.logind_value(paths.logind_config, "KillExcludeUsers")
    lingering = lingers(user, paths.linger_dir)
    if (kill or "").lower() in ("yes", "true", "1", "on"):
        if lingering:
            return Check(
                "survives-logout",
                OK,
                f"KillUserProcesses=yes ({where}), but {user} lingers, so labshare keeps running",
            )
        if excluded and user in excluded.split():
            return Check(
                "survives-logout",
                OK,
                f"KillUserProcesses=yes ({where}), but {user} is in KillExcludeUsers",
            )
        return Check(
            "survives-logout",
            FAIL,
            f"KillUserProcesses=yes in {where}: logging out kills your JupyterLab and its kernels",
            f"ask an admin to run `{enable_linger(user)}`",
        )
    if unreadable:
        return Check(
            "survives-logout",
            WARN,
            f"cannot read {', '.join(map(str, unreadable))}",
            f"ask an admin whether KillUserProcesses is set; if so, to run `{enable_linger(user)}`",
        )
    said = (
        f"KillUserProcesses={kill} ({where})"
        if kill
        else "KillUserProcesses is not set (the distribution's default, no)"
    )
    return Check("survives-logout", OK, f"{said}: your server outlives your ssh session")


def linger(paths: Paths, user: str) -> list[Check]:
    """Whether systemd keeps the member's user manager after logout; nothing where there is no logind.

    Without it, whatever runs under that manager (the `systemd-run --user`
    scope that enforces memory/CPU limits, and with it the server) ends at
    logout, and only root can turn it on where polkit does not let members.
    """
    if not has_logind(paths.linger_dir):
        return []
    if lingers(user, paths.linger_dir):
        return [
            Check(
                "linger",
                OK,
                f"lingering is on for {user}: systemd keeps your user manager after you log out",
            )
        ]
    return [
        Check(
            "linger",
            WARN,
            f"lingering is off for {user}: systemd stops your user manager when your last session ends, "
            "and with it anything started under it (the scope that enforces memory/CPU limits)",
            f"ask an admin to run `{enable_linger(user)}` (members cannot without polkit)",
        )
    ]


def sshd_forwarding(paths: Paths, user: str, mode: str = "socket") -> Check:
    """`labshare connect` forwards a local port to the server's Unix socket: sshd must allow it."""
    config = paths.sshd_config
    if not config.exists():
        return Check(
            "sshd-forwarding",
            WARN,
            f"no {config} on this host, so its sshd settings are unknown",
            "run `labshare doctor HOST` from your laptop to test forwarding end to end",
        )
    settings = hostconf.sshd_t(config, user)
    source, via = "sshd -T", " (sshd -T)"
    if settings is None:
        unreadable: list[Path] = []
        entries = hostconf.sshd_entries(config, unreadable)
        settings = {}
        for key in ("allowstreamlocalforwarding", "disableforwarding", "allowtcpforwarding"):
            value, where = hostconf.lookup(entries, key, first_wins=True)
            if value is not None:
                settings[key] = f"{value.lower()} ({where})"
        if unreadable:
            return Check(
                "sshd-forwarding",
                WARN,
                f"cannot read {', '.join(map(str, sorted(set(unreadable))))}",
                "run `labshare doctor HOST` from your laptop to test forwarding end to end",
            )
        source, via = str(config), ""
    disable = settings.get("disableforwarding", "no").split()[0]
    stream = settings.get("allowstreamlocalforwarding", "yes").split()[0]
    tcp = settings.get("allowtcpforwarding", "yes").split()[0]
    if disable == "yes":
        return Check(
            "sshd-forwarding",
            FAIL,
            f"DisableForwarding {settings['disableforwarding']}{via}: sshd forwards nothing, "
            "so `labshare connect` cannot reach your server",
            "ask the admin to remove DisableForwarding for members (labshare needs -L forwarding only)",
        )
    if stream in ("no", "remote"):
        fix = (
            "ask the admin to set `AllowStreamLocalForwarding local` in sshd_config, "
            "or use `labshare start --tcp` on this host"
        )
        status = FAIL if mode == "socket" else WARN
        return Check(
            "sshd-forwarding",
            status,
            f"AllowStreamLocalForwarding {settings['allowstreamlocalforwarding']}{via}: "
            "forwarding to the server's Unix socket is refused",
            fix,
        )
    if mode == "tcp" and tcp in ("no", "remote"):
        return Check(
            "sshd-forwarding",
            FAIL,
            f"AllowTcpForwarding {settings['allowtcpforwarding']}{via} "
            "but your server listens on TCP",
            "run `labshare restart` without --tcp, or ask the admin",
        )
    return Check("sshd-forwarding", OK, f"sshd allows forwarding to Unix sockets ({source})")


def uv_available() -> Check:
    """`labshare env` drives uv; it comes with labshare from PyPI, else from PATH."""
    from labshare.envs.uv import uv_bin

    try:
        uv = uv_bin()
    except LabshareError as exc:
        return Check("uv", FAIL, exc.message, upgrade_command())
    try:
        done = proc.run([uv, "--version"], what=f"{uv} --version", timeout=20)
    except OSError as exc:
        return Check("uv", FAIL, f"{uv} does not run ({exc})", upgrade_command())
    except LabshareError as exc:
        if exc.__cause__ is None:
            return Check("uv", FAIL, f"{uv} --version failed", upgrade_command())
        return Check("uv", FAIL, f"{uv} does not run ({exc.__cause__})", upgrade_command())
    return Check("uv", OK, f"{done.stdout.strip()} ({uv})")


def kernel_path() -> Check:
    """Which kernels Jupyter offers, which directory wins a name, and what is stale, shadowed or doubled."""
    from labshare.envs import kernels as ks

    places = ks.KernelPlaces.current()
    entries = ks.list_kernels(places)
    order = " > ".join(str(p) for p in places.search[:4]) + (
        " > ..." if len(places.search) > 4 else ""
    )
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
        parts.append(
            "shadowed: " + ", ".join(f"{e.resource_dir} ({e.problems[-1]})" for e in shadowed)
        )
        fixes.append("remove the hidden copy, or `labshare env list` to see which one Jupyter uses")
    if dup:
        parts.append("same label twice: " + ", ".join(sorted({e.display_name for e in dup})))
        fixes.append("`labshare env adopt PROJECT` re-registers a project with a distinct label")
    return Check("kernels", WARN, head + "; " + "; ".join(parts), "; ".join(dict.fromkeys(fixes)))


def gpu() -> Check:
    """The NVIDIA driver answers through NVML (what GPU limits and hub-config rely on)."""
    driver_present = gpus.driver_present()
    try:
        driver, devices = gpus.read_driver()
    except gpus.NoNvml:  # raised only where a driver is
        return Check(
            "gpu",
            WARN,
            "an NVIDIA driver is installed but nvidia-ml-py is not",
            upgrade_command("gpu"),
        )
    except gpus.NoGpu as exc:
        if not driver_present:
            return Check("gpu", OK, "no NVIDIA GPU on this host")
        return Check(
            "gpu",
            FAIL,
            f"the NVIDIA driver does not answer through NVML ({exc.cause})",
            "ask the admin: the driver and the kernel module may not match (a reboot after an update)",
        )
    if not devices:
        return Check("gpu", OK, f"NVIDIA driver {driver}, no GPU visible")
    return Check(
        "gpu",
        OK,
        f"NVIDIA driver {driver}, {len(devices)} GPU(s): {', '.join(d.name for d in devices)}",
    )


def site_policy(paths: Paths, user: str, environ: Mapping[str, str]) -> list[Check]:
    """The admin's policy as it applies to this member, and the parts this host cannot enforce."""
    from labshare import config
    from labshare.server.launch import systemd_user_manager

    try:
        site, policy = config.effective(paths.site_config, paths.user_config_file, user)
    except LabshareError as exc:
        return [
            Check(
                "site-policy",
                FAIL,
                exc.message,
                "fix the file named above (the admin owns the site config)",
            )
        ]
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
        unenforced.append(
            "the GPU list, which is CUDA_VISIBLE_DEVICES for your kernels, a convention, not a wall"
        )
    if unenforced:
        fix = (
            f"ask an admin to run `{enable_linger(user)}`, then log in again and `labshare restart`"
            if (lim.memory_max or lim.cpus) and not systemd_user_manager(environ)
            else None
        )
        out.append(
            Check(
                "policy-enforcement",
                WARN,
                "not enforced on this host: " + "; ".join(unenforced),
                fix,
            )
        )
    else:
        out.append(
            Check("policy-enforcement", OK, "every limit that applies to you is enforced here")
        )
    return out


def _launch_argv(paths: Paths) -> list[str] | None:
    """The command line the member's server runs with: JupyterHub's, where the hub started it,
    else the one `labshare start` last launched; None before the first start."""
    store = st.hub_launch_store if running_hub_server(paths) else st.launch_store
    try:
        spec = store(paths).read()
    except (OSError, LabshareError):
        return None
    return None if spec is None else list(spec.argv)


def kernel_survival(paths: Paths) -> Check:
    """Kernels outlive a server crash or restart only through labshare's provisioner and kernel manager."""
    from importlib import metadata

    from labshare.server.records import PROVISIONER_NAME

    eps = [
        ep
        for ep in metadata.entry_points(group="jupyter_client.kernel_provisioners")
        if ep.name == PROVISIONER_NAME
    ]
    if not eps:
        return Check(
            "kernel-survival",
            FAIL,
            f"the {PROVISIONER_NAME} entry point is not installed, so kernels die with the server",
            upgrade_command(),
        )
    argv = _launch_argv(paths)
    if argv is None:
        return Check(
            "kernel-survival",
            OK,
            f"installed ({eps[0].value}); active from the next `labshare start`",
        )
    if any(
        a.startswith("--ServerApp.kernel_manager_class=") and a.endswith(".LabshareKernelManager")
        for a in argv
    ):
        return Check(
            "kernel-survival", OK, "active: your kernels survive a crash or restart of the server"
        )
    return Check(
        "kernel-survival",
        WARN,
        "your server was started by an older labshare, without kernel survival",
        "labshare restart",
    )


def output_keeping(paths: Paths) -> Check:
    """Output printed while no browser is open is kept only where cells run on the server side."""
    from importlib.util import find_spec

    missing = [m for m in ("jupyter_server_ydoc", "jupyter_server_nbmodel") if find_spec(m) is None]
    if missing:
        return Check(
            "output-keeping",
            FAIL,
            f"{' and '.join(missing)} are not installed, so output printed while no browser is open is lost",
            upgrade_command(),
        )
    argv = _launch_argv(paths)
    if argv is None:
        return Check(
            "output-keeping",
            OK,
            "installed; active from the next `labshare start` unless turned off",
        )
    if "--OutputKeeper.keep=True" in argv:
        return Check(
            "output-keeping",
            OK,
            "active: output printed while no browser is open is kept in the notebook",
        )
    if "--OutputKeeper.keep=False" in argv:
        return Check(
            "output-keeping",
            OK,
            "off for this server (--no-keep-outputs or the site policy): output printed while "
            "no browser is open is lost",
        )
    return Check(
        "output-keeping",
        WARN,
        "your server was started by an older labshare, without output keeping",
        "labshare restart",
    )


def server_mode(paths: Paths) -> str:
    """The running server's mode, so the sshd check asks about the forwarding it really needs."""
    try:
        record = st.load(paths)
    except (OSError, LabshareError):
        return "socket"
    return record.mode if record else "socket"


def hub_server(paths: Paths) -> list[Check]:
    """A server JupyterHub started is the member's server here: say so, and where it is reached."""
    found = running_hub_server(paths)
    if found is None:
        return []
    where = f" at {found.url}" if found.url else ""
    job = f", in Slurm job {found.job_id}" if found.job_id else ""
    return [
        Check(
            "hub-server",
            OK,
            f"your server runs under JupyterHub (pid {found.pid} on {found.host}{job}); open it "
            f"through the hub{where}",
        )
    ]


def run_all(paths: Paths, environ: Mapping[str, str]) -> list[Check]:
    user = user_name(paths.uid)
    checks = versions()
    checks += [private_dirs(paths), socket_path(paths), survives_logout(paths, user)]
    checks += linger(paths, user)
    checks += [
        sshd_forwarding(paths, user, server_mode(paths)),
        uv_available(),
        kernel_path(),
        gpu(),
    ]
    checks.append(project_settings())
    checks += site_policy(paths, user, environ)
    checks.append(gpu_check.check(paths, user))
    checks += hub_server(paths)
    checks.append(kernel_survival(paths))
    checks.append(output_keeping(paths))
    checks.append(old_servers(find_old_servers(paths.uid)))
    checks += notices.checks(paths)
    return checks
