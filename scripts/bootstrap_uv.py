"""Fetch uv's wheel from the package index this machine is set up for, with nothing but the standard library.

`scripts/install` runs this where there is no uv, no pipx and no working
`python3 -m venv` (Debian and Ubuntu ship ensurepip apart, as python3-venv):
uv is one wheel holding one static binary, so any python3 can fetch it, and uv
then makes labshare's environment without venv or pip.

The index is the one pip and uv would use here (UV_DEFAULT_INDEX,
UV_INDEX_URL, PIP_INDEX_URL, then `index-url` in pip's config files, then
PyPI); proxies come from the usual variables (urllib reads them) and trust
from SSL_CERT_FILE / SSL_CERT_DIR, PIP_CERT or pip's `cert`.  The wheel is
refused unless its sha256 matches the one the index gives.

    python3 scripts/bootstrap_uv.py DIR       # puts DIR/uv and DIR/uvx; prints the index used
    python3 scripts/bootstrap_uv.py --index   # prints the index, for a uv that is already there

Every failure is one line on stderr saying what to do, and exit status 1.
"""

from __future__ import annotations

import base64
import configparser
import hashlib
import html.parser
import json
import os
import platform
import re
import shutil
import ssl
import stat
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Mapping
from pathlib import Path

PYPI = "https://pypi.org/simple"
TIMEOUT = 60
ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"
WHEEL = re.compile(r"^uv-(?P<version>\d+(?:\.\d+)*)-py3-none-(?P<platforms>[^-]+)\.whl$")
INDEX_HINT = (
    "check your network, or set PIP_INDEX_URL (or UV_DEFAULT_INDEX) to your lab's package index"
)


class Refused(Exception):
    """One sentence for the member: what went wrong and what to do."""


def pip_config_files(env: Mapping[str, str]) -> list[Path]:
    """pip's config files, lowest precedence first, as `pip config debug` lists them on Linux and macOS."""
    home = Path(env.get("HOME") or os.path.expanduser("~"))
    dirs = [d for d in (env.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(":") if d]
    files = [Path(d) / "pip" / "pip.conf" for d in reversed(dirs)] + [Path("/etc/pip.conf")]
    config_home = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
    files += [home / ".pip" / "pip.conf", config_home / "pip" / "pip.conf"]
    if env.get("PIP_CONFIG_FILE") and env["PIP_CONFIG_FILE"] != os.devnull:
        files.append(Path(env["PIP_CONFIG_FILE"]))
    return files


def pip_setting(env: Mapping[str, str], key: str) -> str | None:
    """`key` from pip's config files: [install] over [global], a later file over an earlier one."""
    if env.get("PIP_CONFIG_FILE") == os.devnull:
        return None
    found = None
    for path in pip_config_files(env):
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue
        for section in ("global", "install"):
            if parser.has_option(section, key):
                found = parser.get(section, key).strip()
    return found or None


def index_url(env: Mapping[str, str]) -> str:
    """The index uv and pip would install from here; uv's own settings first, since uv does the rest."""
    for key in ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL"):
        if env.get(key):
            return env[key].rstrip("/")
    return (pip_setting(env, "index-url") or PYPI).rstrip("/")


def tls_context(env: Mapping[str, str]) -> ssl.SSLContext:
    """The system's trust (which honours SSL_CERT_FILE / SSL_CERT_DIR), plus pip's own CA bundle if one is set."""
    context = ssl.create_default_context()
    cafile = env.get("PIP_CERT") or pip_setting(env, "cert")
    if cafile:
        try:
            context.load_verify_locations(cafile=cafile)
        except (OSError, ssl.SSLError) as exc:
            raise Refused(
                f"cannot read the CA bundle {cafile} named by PIP_CERT or pip's config ({exc}); "
                "fix or unset it"
            ) from exc
    return context


_LOGINS: dict[str, str] = {}  # host -> Basic credentials, taken out of an index URL


def without_login(url: str) -> str:
    """`url` with any user:password taken out (and kept for its host): never printed, never sent elsewhere.

    pip and uv accept `https://user:password@host/simple`; urllib would take
    `user:password@host` for the host name, and a message would show the password.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    netloc += f":{parts.port}" if parts.port else ""
    login = (
        f"{urllib.parse.unquote(parts.username or '')}:{urllib.parse.unquote(parts.password or '')}"
    )
    _LOGINS[netloc] = base64.b64encode(login.encode()).decode()
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def fetch(url: str, context: ssl.SSLContext, accept: str = "*/*") -> tuple[bytes, str, str]:
    """The body, content type and final URL of `url`; a failure is a Refused naming the index."""
    url = without_login(url)
    headers = {"Accept": accept, "User-Agent": "labshare-install"}
    login = _LOGINS.get(urllib.parse.urlsplit(url).netloc)
    if login:
        headers["Authorization"] = f"Basic {login}"
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT, context=context) as response:
            return response.read(), response.headers.get("Content-Type", ""), response.geturl()
    except urllib.error.HTTPError as exc:
        raise Refused(
            f"the package index answered {exc.code} {exc.reason} for {url}; {INDEX_HINT}"
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Refused(
            f"could not reach the package index at {url} ({reason}); {INDEX_HINT}"
        ) from exc


class _Links(html.parser.HTMLParser):
    """The anchors of a PEP 503 page: (href, yanked)."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, bool]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            named = dict(attrs)
            if named.get("href"):
                self.links.append((str(named["href"]), "data-yanked" in named))


def wheel_files(body: bytes, content_type: str, base: str) -> list[dict[str, str]]:
    """Every uv file on the project page as {filename, url, sha256}, from PEP 691 JSON or PEP 503 HTML."""
    files = []
    if "json" in content_type:
        for entry in json.loads(body.decode("utf-8"))["files"]:
            if not entry.get("yanked"):
                files.append(
                    {
                        "filename": entry["filename"],
                        "url": urllib.parse.urljoin(base, entry["url"]),
                        "sha256": (entry.get("hashes") or {}).get("sha256", ""),
                    }
                )
        return files
    parser = _Links()
    parser.feed(body.decode("utf-8", "replace"))
    for href, yanked in parser.links:
        url, _, fragment = urllib.parse.urljoin(base, href).partition("#")
        if not yanked:
            digest = fragment[len("sha256=") :] if fragment.startswith("sha256=") else ""
            files.append(
                {
                    "filename": urllib.parse.unquote(url.rsplit("/", 1)[-1]),
                    "url": url,
                    "sha256": digest,
                }
            )
    return files


def platform_fits(platforms: str) -> bool:
    """Whether one of a wheel's platform tags runs here (manylinux / musllinux / macOS, by arch and version)."""
    machine = platform.machine().lower()
    arch = {
        "amd64": "x86_64",
        "arm64": "aarch64" if sys.platform.startswith("linux") else "arm64",
    }.get(machine, machine)
    if sys.platform == "darwin":
        mac = tuple(int(p) for p in (platform.mac_ver()[0] or "0").split(".")[:2])
        for tag in platforms.split("."):
            found = re.fullmatch(r"macosx_(\d+)_(\d+)_(\w+)", tag)
            if (
                found
                and found.group(3) in (arch, "universal2")
                and (int(found.group(1)), int(found.group(2))) <= mac
            ):
                return True
        return False
    libc, libc_version = platform.libc_ver()
    have = tuple(int(p) for p in re.findall(r"\d+", libc_version)[:2]) if libc == "glibc" else None
    for tag in platforms.split("."):
        tag = {
            "manylinux1_" + arch: "manylinux_2_5_" + arch,
            "manylinux2010_" + arch: "manylinux_2_12_" + arch,
            "manylinux2014_" + arch: "manylinux_2_17_" + arch,
        }.get(tag, tag)
        found = re.fullmatch(r"(manylinux|musllinux)_(\d+)_(\d+)_(\w+)", tag)
        if not found or found.group(4) != arch:
            continue
        if (
            found.group(1) == "manylinux"
            and have
            and (int(found.group(2)), int(found.group(3))) <= have
        ):
            return True
        if found.group(1) == "musllinux" and not have:
            return True
    return False


def pick(files: list[dict[str, str]], index: str) -> dict[str, str]:
    """The newest released uv wheel for this machine."""
    fitting = []
    for entry in files:
        found = WHEEL.match(entry["filename"])
        if found and platform_fits(found.group("platforms")):
            fitting.append((tuple(int(p) for p in found.group("version").split(".")), entry))
    if not fitting:
        raise Refused(
            f"the package index {index} has no uv wheel for {sys.platform} {platform.machine()}; "
            "install uv another way (https://docs.astral.sh/uv/) and run this again"
        )
    best = max(fitting, key=lambda pair: pair[0])[1]
    if not re.fullmatch(r"[0-9a-f]{64}", best["sha256"].lower()):
        raise Refused(
            f"the package index {index} gives no sha256 for {best['filename']}, so it cannot be checked; "
            "use an index that publishes hashes (PEP 503 or PEP 691)"
        )
    return best


def unpack(wheel: Path, into: Path) -> None:
    """uv and uvx out of the wheel's scripts folder, executable."""
    with zipfile.ZipFile(wheel) as archive:
        for name in ("uv", "uvx"):
            member = next(
                (
                    n
                    for n in archive.namelist()
                    if re.fullmatch(rf"uv-[^/]+\.data/scripts/{name}", n)
                ),
                None,
            )
            if member is None:
                raise Refused(
                    f"{wheel.name} holds no {name} binary; the index serves a broken uv wheel"
                )
            with archive.open(member) as source, open(into / name, "wb") as target:
                shutil.copyfileobj(source, target)
            (into / name).chmod(
                stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
            )


def bootstrap(into: Path, env: Mapping[str, str]) -> str:
    """Put a checked uv into `into`; return the index it came from, login included, for uv."""
    given = index_url(env)
    index = without_login(given)  # as messages show it; the login goes only to its own host
    context = tls_context(env)
    page = index + "/uv/"
    body, content_type, final = fetch(page, context, ACCEPT)
    try:
        best = pick(wheel_files(body, content_type, final), index)
    except (ValueError, KeyError) as exc:
        raise Refused(f"{page} is not a package index page ({exc}); {INDEX_HINT}") from exc
    data, _, _ = fetch(best["url"], context)
    if hashlib.sha256(data).hexdigest() != best["sha256"].lower():
        raise Refused(
            f"{best['filename']} from {index} does not match the sha256 the index gives, so it was refused; "
            "ask whoever runs the index (or your network's proxy) why"
        )
    with tempfile.TemporaryDirectory(dir=into) as scratch:
        wheel = Path(scratch) / best["filename"]
        wheel.write_bytes(data)
        try:
            unpack(wheel, into)
        except zipfile.BadZipFile as exc:
            raise Refused(
                f"{best['filename']} from {index} is not a wheel ({exc}); ask whoever runs the index"
            ) from exc
    return given


def main(argv: list[str]) -> int:
    if argv[1:] == ["--index"]:
        print(index_url(os.environ))
        return 0
    if len(argv) != 2 or not os.path.isdir(argv[1]):
        print("usage: python3 bootstrap_uv.py EXISTING_DIR | --index", file=sys.stderr)
        return 2
    try:
        print(bootstrap(Path(argv[1]), os.environ))
    except Refused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
