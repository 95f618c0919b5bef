"""Notices: a burst of 1,000 from 20 members while the lab's endpoint is down for a minute.

Twenty real Unix accounts (made here, removed after) each leave 50 notices
in the lab's spool at once, as their senders do (`notify.spool.drop`, run as
that account, so the spool files are theirs); root's service
(`labshare admin notices serve`) takes them and sends each to an HTTP
receiver on 127.0.0.1 (tests/notify_endpoints.py) through apprise's
`json://`.  The receiver is down (not listening) for `--down` seconds from
the start of the burst, then up.  Goal: all 1,000 delivered, each exactly
once; the script prints how long after the endpoint came back that took.

Run as root:  python benchmarks/notify_burst.py [--members 20] [--each 50] [--down 60]
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from common import BIN, machine
from notify_endpoints import Endpoint  # tests/, on the path through common

from labshare.listeners import free_port

LABSHARE = str(BIN / "labshare")
DROP = """
import sys, time
from pathlib import Path
from labshare.notify import spool
from labshare.notify.events import new_id
from labshare.records.notice import Notice
user, where, each = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
for n in range(each):
    problem = spool.drop(where, Notice(id=new_id(), kind="run", user=user, host="bench",
                                       what="finished", subject=f"`{user}-{n}`", seconds=600.0,
                                       at=time.time()))
    assert problem is None, problem
"""


def make_users(count: int) -> list[str]:
    names = [f"lsb{uuid.uuid4().hex[:8]}" for _ in range(count)]
    for name in names:
        subprocess.run(["useradd", "--no-create-home", name], check=True)
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--each", type=int, default=50)
    parser.add_argument("--down", type=float, default=60.0, help="seconds the endpoint is down")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: it makes Unix accounts and runs root's notices service")
    print(machine())
    total = args.members * args.each
    where = Path(tempfile.mkdtemp(prefix="labshare-bench-burst-"))
    where.chmod(0o755)
    spool = where / "spool"
    spool.mkdir()
    spool.chmod(0o1733)
    endpoint = Endpoint("http", free_port(), where / "got.jsonl")
    channels = where / "channels.toml"
    channels.write_text(f'urls = ["json://127.0.0.1:{endpoint.port}/burst/{{user}}"]\n')
    channels.chmod(0o600)
    site = where / "site.toml"
    site.write_text(f'[notify]\nchannels_file = "{channels}"\nspool_dir = "{spool}"\n')
    site.chmod(0o644)
    service = subprocess.Popen(
        [LABSHARE, "admin", "notices", "serve", "--state-dir", str(where / "service")],
        env={**os.environ, "LABSHARE_SITE_CONFIG": str(site)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    users = make_users(args.members)
    try:
        assert service.stdout is not None and "serving" in service.stdout.readline()
        began = time.perf_counter()
        droppers = [
            subprocess.Popen(
                [sys.executable, "-c", DROP, user, str(spool), str(args.each)],
                user=pwd.getpwnam(user).pw_uid,
                group=pwd.getpwnam(user).pw_gid,
                extra_groups=[],
                cwd="/",
            )
            for user in users
        ]
        for dropper in droppers:
            assert dropper.wait(300) == 0
        dropped = time.perf_counter() - began
        time.sleep(max(0.0, args.down - (time.perf_counter() - began)))
        endpoint.start()
        up = time.perf_counter()
        while len(endpoint.received()) < total and time.perf_counter() - up < 900:
            time.sleep(0.1)
        delivered = time.perf_counter() - up
        time.sleep(5)  # anything sent twice would come now
        seen = Counter(
            json.loads(entry["body"])["message"].split("`")[1] for entry in endpoint.received()
        )
        wanted = {f"{user}-{n}" for user in users for n in range(args.each)}
        tally = json.loads((where / "service" / "tally.json").read_text())
        (counts,) = tally["channels"].values()
        print(f"{total} notices from {args.members} members, endpoint down {args.down:.0f} s")
        print(f"  all left in the spool after {dropped:.2f} s")
        print(f"  all delivered {delivered:.1f} s after the endpoint came back")
        print(
            f"  delivered {sum(seen.values())}, distinct {len(seen)}, missing {len(wanted - set(seen))}, "
            f"twice or more {sum(1 for c in seen.values() if c > 1)}"
        )
        print(f"  service: {counts['sent']} sent, {counts['failures']} failed tries before it")
    finally:
        service.terminate()
        service.wait(30)
        endpoint.stop()
        for user in users:
            subprocess.run(["userdel", user], capture_output=True)
        shutil.rmtree(where, ignore_errors=True)


if __name__ == "__main__":
    main()
