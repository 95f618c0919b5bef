"""`labshare doctor`: every check against a real condition the test makes, then undoes.

Host files (sshd_config, logind.conf, the linger dir, the site config) are
pointed at copies in the member's HOME, so each test decides what the host
looks like; the token-less Jupyter, the stale kernelspec and the sshd are real.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import psutil
import pytest
import sshd as sshd_helper
from conftest import BIN, LABSHARE, Member, tokenless_jupyter

from labshare.doctor.old_servers import tokenless_server

SERVER_CHECKS = {
    "labshare",
    "jupyter",
    "jupyter-internals",
    "vulnerable-packages",
    "private-dirs",
    "socket-path",
    "survives-logout",
    "sshd-forwarding",
    "uv",
    "kernels",
    "gpu",
    "site-policy",
    "policy-enforcement",
    "gpus",
    "kernel-survival",
    "output-keeping",
    "old-servers",
    "project-settings",
    "linger",
}


def host_like(
    m: Member, sshd: str = "AllowStreamLocalForwarding yes\n", logind: str = "[Login]\n"
) -> Member:
    """Point doctor's host files at copies in HOME that describe a well set-up server (the member lingers)."""
    (m.home / "sshd_config").write_text(sshd)
    (m.home / "logind.conf").write_text(logind)
    (m.home / "linger").mkdir(exist_ok=True)
    (m.home / "linger" / m.name).touch()
    m.extra_env.update(
        {
            "LABSHARE_SSHD_CONFIG": str(m.home / "sshd_config"),
            "LABSHARE_LOGIND_CONFIG": str(m.home / "logind.conf"),
            "LABSHARE_LINGER_DIR": str(m.home / "linger"),
            "LABSHARE_SITE_CONFIG": str(m.home / "site.toml"),
        }
    )
    return m


def doctor(m: Member, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict]:
    done = m.run("doctor", "--json", *args, env=env, timeout=240)
    assert done.stdout.strip(), done.stderr
    return done.returncode, json.loads(done.stdout)


def check(report: dict, name: str) -> dict:
    found = [c for c in report["checks"] if c["name"] == name]
    assert len(found) == 1, report
    return found[0]


@pytest.fixture
def own(make_user) -> Member:
    """A member with their own Unix account, so 'your processes' means only what this test starts."""
    return host_like(make_user())


def test_clean_host_is_all_ok_with_the_json_shape(own: Member) -> None:
    code, report = doctor(own)
    assert code == 0, report
    assert report["side"] == "server"
    assert {c["name"] for c in report["checks"]} == SERVER_CHECKS
    for c in report["checks"]:
        assert set(c) == {"name", "status", "detail", "fix"}
        assert c["status"] == "ok", c
        assert isinstance(c["detail"], str) and c["detail"]
    text = own.run("doctor", timeout=240)
    assert text.returncode == 0
    assert text.stdout.count("\n  ok  ") == len(SERVER_CHECKS) and "All good." in text.stdout


def test_world_readable_state_dir_fails_until_made_private(own: Member) -> None:
    own.state_dir.mkdir(parents=True)
    subprocess.run(["chown", "-R", str(own.uid), str(own.home / ".local")], check=True)
    os.chmod(own.state_dir.parent, 0o700)
    os.chmod(own.state_dir, 0o755)
    code, report = doctor(own)
    c = check(report, "private-dirs")
    assert code == 1 and c["status"] == "fail" and "0755" in c["detail"]
    assert c["fix"].startswith("chmod go-rwx") and str(own.state_dir) in c["fix"]
    text = own.run("doctor", timeout=240)
    assert (
        text.returncode == 1
        and "FAIL  private-dirs" in text.stdout
        and "fix: chmod go-rwx" in text.stdout
    )
    os.chmod(own.state_dir, 0o700)
    code, report = doctor(own)
    assert code == 0 and check(report, "private-dirs")["status"] == "ok"


def test_too_long_socket_path_warns_and_names_the_fallback(own: Member) -> None:
    deep = own.home / ("s" * 100)
    deep.mkdir()
    os.chown(deep, own.uid, -1)
    code, report = doctor(own, env={"XDG_STATE_HOME": str(deep)})
    c = check(report, "socket-path")
    assert (
        c["status"] == "warn"
        and f"/tmp/labshare-{own.uid}/" in c["detail"]
        and "XDG_STATE_HOME" in c["fix"]
    )
    assert code == 0
    code, report = doctor(own)
    assert check(report, "socket-path")["status"] == "ok"


@pytest.mark.parametrize("rule", ["DisableForwarding yes", "AllowStreamLocalForwarding no"])
def test_sshd_config_with_forwarding_disabled_fails(own: Member, rule: str) -> None:
    host_like(own, sshd=f"Port 22\n{rule}\n")
    code, report = doctor(own)
    c = check(report, "sshd-forwarding")
    assert code == 1 and c["status"] == "fail" and rule.split()[0] in c["detail"] and c["fix"]


def test_sshd_drop_in_is_read_and_first_value_wins(own: Member) -> None:
    drop = own.home / "sshd_config.d"
    drop.mkdir()
    (drop / "10-lab.conf").write_text("AllowStreamLocalForwarding no\n")
    host_like(own, sshd=f"Include {drop}/*.conf\nAllowStreamLocalForwarding yes\n")
    assert check(doctor(own)[1], "sshd-forwarding")["status"] == "fail"
    (drop / "10-lab.conf").write_text("# nothing\n")
    assert check(doctor(own)[1], "sshd-forwarding")["status"] == "ok"


@pytest.mark.root
def test_sshd_t_reads_a_real_sshd_config(member: Member) -> None:
    """As root, `sshd -T` can read the host keys and gives sshd's own verdict."""
    from conftest import need_root

    need_root("sshd -T reads host keys")
    sshd = sshd_helper.make_sshd(member.home / "sshd", extra=("DisableForwarding yes",))
    sshd.root.joinpath("sshd_config").write_text(sshd.config_text())
    host_like(member)
    member.extra_env["LABSHARE_SSHD_CONFIG"] = str(sshd.root / "sshd_config")
    c = check(doctor(member)[1], "sshd-forwarding")
    assert c["status"] == "fail" and "sshd -T" in c["detail"]


def test_a_typo_in_a_projects_tool_labshare_fails_naming_the_key_the_file_and_the_closest_key(
    own: Member,
) -> None:
    project = own.home / "projects" / "typo"
    project.mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[project]\nname = "typo"\n\n[tool.labshare]\ngpu = 0\n'
    )
    spec = own.home / ".local/share/jupyter/kernels/labshare-typo/kernel.json"
    spec.parent.mkdir(parents=True)
    spec.write_text(
        json.dumps(
            {
                "argv": ["/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "typo",
                "language": "python",
                "metadata": {"labshare": {"schema": 1, "project": str(project)}},
            }
        )
    )
    code, report = doctor(own)
    c = check(report, "project-settings")
    assert code == 1 and c["status"] == "fail", c
    assert c["detail"] == (
        f"{project / 'pyproject.toml'}: [tool.labshare] has no key `gpu`; did you mean `gpus`? "
        "Fix or remove it, then try again."
    )
    (project / "pyproject.toml").write_text(
        '[project]\nname = "typo"\n\n[tool.labshare]\ngpus = 0\n'
    )
    assert check(doctor(own)[1], "project-settings")["status"] == "ok"


def test_lingering_off_warns_that_an_admin_turns_it_on(own: Member) -> None:
    (own.home / "linger" / own.name).unlink()
    code, report = doctor(own)
    c = check(report, "linger")
    assert code == 0 and c["status"] == "warn" and f"lingering is off for {own.name}" in c["detail"]
    assert (
        c["fix"]
        == f"ask an admin to run `sudo loginctl enable-linger {own.name}` (members cannot without polkit)"
    )
    assert (
        f"fix: ask an admin to run `sudo loginctl enable-linger {own.name}`"
        in own.run("doctor", timeout=240).stdout
    )


def test_no_linger_check_where_there_is_no_logind(own: Member) -> None:
    if os.path.isdir("/run/systemd/system"):
        pytest.skip("systemd runs this host, so logind is there to ask")
    own.extra_env["LABSHARE_LINGER_DIR"] = str(own.home / "no-such-dir")
    code, report = doctor(own)
    assert code == 0 and "linger" not in {c["name"] for c in report["checks"]}


def test_kill_user_processes_without_linger_fails_with_the_fix(own: Member) -> None:
    host_like(own, logind="[Login]\nKillUserProcesses=yes\n")
    (own.home / "linger" / own.name).unlink()
    code, report = doctor(own)
    c = check(report, "survives-logout")
    assert code == 1 and c["status"] == "fail"
    assert c["fix"] == f"ask an admin to run `sudo loginctl enable-linger {own.name}`"
    (own.home / "linger" / own.name).touch()
    assert check(doctor(own)[1], "survives-logout")["status"] == "ok"


def test_missing_uv_fails(own: Member) -> None:
    """uv hidden the two ways labshare finds it: the Python package cannot import, and PATH lacks it."""
    empty = own.home / "empty-bin"
    empty.mkdir()
    hide = "import sys; sys.modules['uv'] = None; from labshare.cli import main; main()"
    argv = [str(BIN / "python"), "-c", hide, "doctor", "--json"]
    done = own.run_cmd(argv, env={"PATH": str(empty)}, timeout=240)
    c = check(json.loads(done.stdout), "uv")
    assert (
        done.returncode == 1
        and c["status"] == "fail"
        and "uv was not found" in c["detail"]
        and c["fix"]
    )
    done = own.run_cmd(argv, env={"PATH": f"{BIN}"}, timeout=240)
    assert check(json.loads(done.stdout), "uv")["status"] == "ok"


def test_stale_kernelspec_warns_and_prune_clears_it(own: Member) -> None:
    spec = own.home / ".local/share/jupyter/kernels/rye-myproject"
    spec.mkdir(parents=True)
    spec.joinpath("kernel.json").write_text(
        json.dumps(
            {
                "argv": [
                    str(own.home / "projects/myproject/.venv/bin/python"),
                    "-m",
                    "ipykernel_launcher",
                    "-f",
                    "{connection_file}",
                ],
                "display_name": "Python (Rye - my_project)",
                "language": "python",
            }
        )
    )
    subprocess.run(["chown", "-R", f"{own.uid}", str(own.home / ".local")], check=True)
    code, report = doctor(own)
    c = check(report, "kernels")
    assert code == 0 and c["status"] == "warn"
    assert "rye-myproject" in c["detail"] and "is missing" in c["detail"]
    assert "labshare kernels prune --foreign" in c["fix"]
    own.run("kernels", "prune", "--foreign", "--yes", check=True)
    assert check(doctor(own)[1], "kernels")["status"] == "ok"


def test_known_vulnerable_release_fails(own: Member) -> None:
    """An installed jupyter-server-proxy 4.0.0 (its metadata on sys.path) is CVE-2024-28179."""
    site = own.home / "site"
    dist = site / "jupyter_server_proxy-4.0.0.dist-info"
    dist.mkdir(parents=True)
    dist.joinpath("METADATA").write_text(
        "Metadata-Version: 2.1\nName: jupyter-server-proxy\nVersion: 4.0.0\n"
    )
    code, report = doctor(own, env={"PYTHONPATH": str(site)})
    c = check(report, "vulnerable-packages")
    assert (
        code == 1
        and c["status"] == "fail"
        and "CVE-2024-28179" in c["detail"]
        and ">=4.1.1" in c["fix"]
    )
    dist.rename(site / "jupyter_server_proxy-4.1.1.dist-info")
    (site / "jupyter_server_proxy-4.1.1.dist-info/METADATA").write_text(
        "Metadata-Version: 2.1\nName: jupyter-server-proxy\nVersion: 4.1.1\n"
    )
    assert (
        check(doctor(own, env={"PYTHONPATH": str(site)})[1], "vulnerable-packages")["status"]
        == "ok"
    )


def test_site_policy_shows_what_is_not_enforced_and_bad_config_fails(own: Member) -> None:
    site = own.home / "site.toml"
    site.write_text(
        f'[server]\ncull_idle_kernels_after = "2h"\n[users.{own.name}]\n'
        'gpus = [1]\nmemory_max = "8G"\n'
    )
    code, report = doctor(own)
    policy, enforce = check(report, "site-policy"), check(report, "policy-enforcement")
    assert (
        policy["status"] == "ok"
        and "GPUs 1" in policy["detail"]
        and "memory 8G" in policy["detail"]
    )
    assert "7200 s" in policy["detail"]
    assert (
        enforce["status"] == "warn"
        and "memory/CPU" in enforce["detail"]
        and "CUDA_VISIBLE_DEVICES" in enforce["detail"]
    )
    site.write_text("[server]\nmode = 'ftp'\n")
    code, report = doctor(own)
    c = check(report, "site-policy")
    assert code == 1 and c["status"] == "fail" and "server.mode" in c["detail"]


@pytest.fixture
def tokenless(own: Member) -> Iterator[tuple[Member, subprocess.Popen]]:
    """The old guide's server: `jupyter lab --IdentityProvider.token=''` on 127.0.0.1, started by hand."""
    proc = tokenless_jupyter(own).proc
    try:
        yield own, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


def test_hand_started_tokenless_jupyter_is_found_and_stopped_only_when_asked(
    tokenless: tuple[Member, subprocess.Popen],
) -> None:
    own, proc = tokenless
    code, report = doctor(own)
    c = check(report, "old-servers")
    assert code == 1 and c["status"] == "fail" and f"pid {proc.pid}" in c["detail"]
    assert "--stop-old" in c["fix"]
    refused = own.run("doctor", "--stop-old", timeout=240)
    assert refused.returncode != 0 and "pass --yes" in refused.stderr
    assert proc.poll() is None, "stopped without being asked"
    code, report = doctor(own, "--stop-old", "--yes")
    assert report["stopped"] == [proc.pid]
    assert check(report, "old-servers")["status"] == "ok"
    proc.wait(30)
    assert (
        not psutil.pid_exists(proc.pid) or psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE
    )


@pytest.mark.parametrize(
    "argv,old",
    [
        (["/venv/bin/python", "/venv/bin/jupyter-lab", "--IdentityProvider.token="], True),
        (["/venv/bin/python", "/venv/bin/jupyter", "lab", "--ServerApp.token", ""], True),
        (["python3", "-m", "notebook", "--NotebookApp.token=''"], True),
        # A build is not a server, for doctor as for `ps`: both read command lines through monitor.argv.
        (["/venv/bin/python", "/venv/bin/jupyter-lab", "build", "--ServerApp.token="], False),
        (["/venv/bin/python", "/venv/bin/jupyter-lab", "--IdentityProvider.token=s3cret"], False),
        (["/venv/bin/python", "/venv/bin/jupyter-lab"], False),
    ],
)
@pytest.mark.quick
def test_what_counts_as_a_token_less_server(argv: list[str], old: bool) -> None:
    assert tokenless_server(argv) is old


def test_labshare_own_server_is_not_an_old_server(own: Member) -> None:
    own.run("start", check=True, timeout=240)
    try:
        code, report = doctor(own)
        assert check(report, "old-servers")["status"] == "ok"
        assert "active" in check(report, "kernel-survival")["detail"]
        assert check(report, "output-keeping")["detail"].startswith("active"), report
        assert code == 0, report
    finally:
        own.run("stop", timeout=120)


# ------------------------------------------------------------------ laptop side


def cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return ""


def all_end(procs: list[psutil.Process], timeout: float = 20) -> bool:
    """True once every process in `procs` has exited: the remote end of the test may take a moment."""
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return not alive


@pytest.mark.sshd
def test_doctor_host_through_a_real_sshd(make_user) -> None:
    gen = sshd_helper.build(make_user)
    lab = next(gen)
    try:
        done = lab.laptop.run("doctor", "gpu1", "--json", timeout=240)
        forwarding = check(json.loads(done.stdout), "forwarding")
        assert (
            forwarding["status"] == "ok" and "a test socket on the server" in forwarding["detail"]
        ), forwarding
        assert all_end([p for p in lab.server.processes() if "doctor" in cmdline(p)]), (
            "test socket left"
        )
        assert not list((lab.server.state_dir / "run").glob("doctor-*"))
        lab.server.run("start", check=True, timeout=240)
        done = lab.laptop.run("doctor", "gpu1", "--json", timeout=240)
        report = json.loads(done.stdout)
        assert report["side"] == "laptop"
        names = [c["name"] for c in report["checks"]]
        assert names == ["ssh-config", "ssh-reach", "labshare-remote", "forwarding", "browser"]
        for name in names[:4]:
            assert check(report, name)["status"] == "ok", report
        assert "reached your JupyterLab" in check(report, "forwarding")["detail"]
        assert check(report, "browser")["status"] in ("ok", "warn")
        assert done.returncode == 0
        assert not [p for p in lab.laptop.processes() if p.name() == "ssh"], (
            "a test tunnel was left open"
        )
        lab.sshd.stop()
        done = lab.laptop.run("doctor", "gpu1", "--json", timeout=240)
        report = json.loads(done.stdout)
        assert done.returncode == 1 and check(report, "ssh-reach")["status"] == "fail"
        assert "Cannot reach gpu1" in check(report, "ssh-reach")["detail"]
    finally:
        gen.close()


@pytest.mark.sshd
def test_doctor_host_with_forwarding_disabled_and_no_server(make_user) -> None:
    gen = sshd_helper.build(make_user, extra=("DisableForwarding yes",))
    lab = next(gen)
    try:
        done = lab.laptop.run("doctor", "gpu1", "--json", timeout=240)
        report = json.loads(done.stdout)
        c = check(report, "forwarding")
        assert (
            done.returncode == 1
            and c["status"] == "fail"
            and "does not allow forwarding" in c["detail"]
        ), c
        assert "--tcp" in c["fix"]
        lab.server.run("start", check=True, timeout=240)
        done = lab.laptop.run("doctor", "gpu1", "--json", timeout=240)
        c = check(json.loads(done.stdout), "forwarding")
        assert (
            done.returncode == 1
            and c["status"] == "fail"
            and "does not allow forwarding" in c["detail"]
        ), c
        assert not [p for p in lab.laptop.processes() if p.name() == "ssh"]
    finally:
        gen.close()


@pytest.mark.sshd
def test_doctor_host_without_labshare_there(make_user) -> None:
    gen = sshd_helper.build(make_user, with_labshare=False)
    lab = next(gen)
    try:
        done = lab.laptop.run("doctor", "gpu1", "--json", timeout=240)
        report = json.loads(done.stdout)
        assert done.returncode == 1
        assert check(report, "ssh-reach")["status"] == "ok"
        assert check(report, "labshare-remote")["status"] == "fail"
        assert "run `sh scripts/install`" in check(report, "labshare-remote")["fix"]
    finally:
        gen.close()


# ------------------------------------------------------------------ help, version, completion


def test_help_groups_commands_by_who_uses_them_and_version(member: Member) -> None:
    out = member.run("--help", check=True).stdout
    server, laptop, admin = (
        out.index(h) for h in ("Member, on the server:", "Member, on the laptop:", "Admin:")
    )
    assert (
        server
        < out.index("  start ")
        < out.index("  doctor ")
        < laptop
        < out.index("  connect ")
        < admin
    )
    assert admin < out.index("  hub-config ")
    from labshare import __version__

    assert member.run("--version", check=True).stdout.strip() == f"labshare, version {__version__}"


@pytest.mark.parametrize(
    "shell,marker",
    [
        ("bash", "complete -o nosort -F _labshare_completion labshare"),
        ("zsh", "#compdef labshare"),
        ("fish", "complete --no-files --command labshare"),
    ],
)
def test_completion_scripts_are_printed(member: Member, shell: str, marker: str) -> None:
    done = member.run("completion", shell, check=True)
    assert marker in done.stdout and f"_LABSHARE_COMPLETE={shell}_complete" in done.stdout
    assert (
        done.stdout
        == member.run_cmd([LABSHARE], env={"_LABSHARE_COMPLETE": f"{shell}_source"}).stdout
    )


def test_bash_completion_really_completes(member: Member) -> None:
    script = member.home / "labshare.bash"
    script.write_text(member.run("completion", "bash", check=True).stdout)
    probe = (
        f"source {script}; COMP_WORDS=(labshare st); COMP_CWORD=1; _labshare_completion labshare; "
        'echo "${COMPREPLY[*]}"; COMP_WORDS=(labshare env c); COMP_CWORD=2; COMPREPLY=(); '
        '_labshare_completion labshare; echo "${COMPREPLY[*]}"'
    )
    done = member.run_cmd(["bash", "--norc", "-c", probe], check=True)
    first, second = done.stdout.splitlines()
    assert sorted(first.split()) == ["start", "status", "stop"]
    assert second.split() == ["create"]


def test_unknown_shell_is_one_clear_error(member: Member) -> None:
    done = member.run("completion", "tcsh")
    assert done.returncode == 2 and "bash" in done.stderr and "Traceback" not in done.stderr
