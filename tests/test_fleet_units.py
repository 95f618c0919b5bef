"""The pure parts of `fleet`: naming groups, choosing a server, the sentence, the table, the record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labshare import __version__
from labshare.errors import ExitCode, LabshareError
from labshare.fleet import choose, group, report
from labshare.fleet.ask import Reply
from labshare.records import TooNew, Unreadable
from labshare.records.fleet import FleetCard, HereAnswer, Load, Mine
from labshare.render import fleet as view

pytestmark = pytest.mark.quick


def configs(tmp_path: Path, site: str = "", member: str = "") -> group.Known:
    (tmp_path / "site.toml").write_text(site)
    (tmp_path / "member.toml").write_text(member)
    return group.known(tmp_path / "site.toml", tmp_path / "member.toml")


def test_groups_come_from_the_site_the_member_or_the_command_line(tmp_path: Path) -> None:
    site_only = configs(tmp_path, site='[lab]\nservers = ["gpu1", "gpu2"]\n')
    assert group.resolve(None, site_only).hosts == ("gpu1", "gpu2")
    both = configs(
        tmp_path,
        site='[lab]\nservers = ["gpu1", "gpu2"]\n',
        member='[lab]\nservers = ["a", "b"]\n[server_groups]\nbig = ["b", "c", "b"]\nnone = []\n',
    )
    assert group.resolve("lab", both).hosts == ("a", "b")  # the member's own list wins
    assert group.resolve("big", both).hosts == ("b", "c")  # each host once, in order
    assert group.resolve("x, alice@y ,", both).hosts == ("x", "alice@y")
    assert group.resolve("x, alice@y ,", both).source == "the command line"
    assert group.is_group("big", both) and group.is_group("gpu9,", both)
    assert not group.is_group("gpu9", both) and not group.is_group("me@big", both)

    with pytest.raises(LabshareError) as unknown:
        group.resolve("nosuch", both)
    assert unknown.value.exit_code == ExitCode.USAGE
    assert "No server group 'nosuch'" in unknown.value.message and "big" in unknown.value.message
    with pytest.raises(LabshareError, match="lists no servers"):
        group.resolve("none", both)
    with pytest.raises(LabshareError, match="names no servers"):
        group.resolve(",", both)
    with pytest.raises(LabshareError, match="is not an ssh host name"):
        group.resolve("gpu1,-oProxyCommand=x", both)
    with pytest.raises(LabshareError, match="no group is defined"):
        group.resolve(None, configs(tmp_path))
    with pytest.raises(LabshareError, match=r"server_groups\.big"):
        configs(tmp_path, member='[server_groups]\nbig = "gpu1"\n')


def answer(
    host: str,
    *,
    free: int = 0,
    load1: float = 0.0,
    running: bool = False,
    cards: tuple[FleetCard, ...] = (),
    reclaim: float | None = None,
) -> HereAnswer:
    return HereAnswer(
        host=host,
        user="alice",
        assign="per-kernel",
        idle_reclaim_after=reclaim,
        cards=cards,
        can_get=free,
        load=Load(cpus=4, load1=load1, memory_total=64 << 30, memory_available=32 << 30),
        mine=Mine(running=running, mode="socket" if running else None),
    )


def card(index: int, **kw: object) -> FleetCard:
    return FleetCard(index=index, uuid=f"GPU-{index}", name="A100", **kw)  # type: ignore[arg-type]


def test_choice_prefers_the_running_lab_then_room_then_the_least_loaded() -> None:
    full = Reply("gpu1", answer("gpu1", free=0, load1=0.0))
    roomy = Reply("gpu2", answer("gpu2", free=2, load1=3.0))
    idle = Reply("gpu3", answer("gpu3", free=1, load1=0.5))
    down = Reply("gpu4", error="timeout", message="gpu4 did not answer")
    assert choose.choose([full, roomy, idle, down], 1, "lab").host == "gpu3"
    assert "least loaded" in choose.choose([full, roomy, idle], 1, "lab").reason
    assert choose.choose([full, roomy, idle], 2, "lab").host == "gpu2"
    assert choose.choose([full, roomy], 0, "lab").host == "gpu1"  # no GPU asked: the least loaded
    mine = Reply("gpu1", answer("gpu1", free=0, load1=9.0, running=True))
    chosen = choose.choose([roomy, mine], 1, "lab")
    assert chosen.host == "gpu1" and chosen.reason == "your JupyterLab already runs there"
    tie = [Reply("b", answer("b", free=1)), Reply("a", answer("a", free=1))]
    assert choose.choose(tie, 1, "g").host == "b"  # the group's order breaks a tie


def test_no_room_names_the_best_option_the_answers_show() -> None:
    now = 1_000_000.0
    busy = Reply("gpu1", answer("gpu1", cards=(card(0, holder="bob", holder_use="busy"),)))
    idle = Reply(
        "gpu2",
        answer(
            "gpu2",
            reclaim=7200,
            cards=(card(0, holder="carol", holder_use="idle, leased 3 h ago"),),
        ),
    )
    own = Reply(
        "gpu3", answer("gpu3", cards=(card(1, holder="alice", mine=True, reclaim_at=now + 2400),))
    )
    with pytest.raises(choose.NoRoom) as no_room:
        choose.choose([busy, idle, own], 1, "lab", now=now)
    said = no_room.value.message
    assert said.startswith(
        "No server of lab has 1 free GPU for you now; best option: gpu3 frees GPU 1 in 40 min"
    )
    assert said.count(";") >= 2 and "\n" not in said
    assert "carol (idle, leased 3 h ago) and idle cards are reclaimed after 2 h" in choose.no_room(
        [busy, idle], 2, "lab", now
    )
    assert "ask bob about GPU 0 on gpu1 (busy)" in choose.no_room([busy], 1, "lab", now)
    down = [Reply("a", error="timeout", message="a: no"), Reply("b", error="auth", message="b: no")]
    assert choose.no_room(down, 1, "lab", now).startswith(
        "No server of lab answered (a: timeout, b: auth)"
    )
    assert choose.no_room(down[:1], 1, "a,", now) == "a: no"  # one host: its own sentence


def test_the_answer_is_a_versioned_record_and_the_table_shows_it() -> None:
    one = answer("gpu1", free=1, cards=(card(0, free=True, memory_total=80 << 30, memory_used=0),))
    data = json.loads(json.dumps(one.to_json()))
    assert data["version"] == HereAnswer.VERSION and data["labshare"] == __version__
    back = HereAnswer.from_json(data, "the answer", remote=True)
    assert back.cards == one.cards and back.load == one.load and back.labshare == __version__
    with pytest.raises(TooNew, match="upgrade labshare here"):
        HereAnswer.from_json({**data, "version": 99}, "the answer", remote=True)
    broken = {**data, "cards": [{"index": 0}]}
    with pytest.raises(Unreadable, match="upgrade labshare there"):
        HereAnswer.from_json(broken, "the answer", remote=True)

    table = report.build(
        "lab",
        [
            Reply("gpu1", one, seconds=0.2),
            Reply("gpu2", error="too old", message="labshare on gpu2 is too old (0.0.9) to answer"),
        ],
    )
    shown = [entry["host"] for entry in table.servers]
    assert shown == ["gpu1", "gpu2"] and table.servers[0]["hostname"] == "gpu1"
    assert table.servers[0]["cards"][0]["free"] is True and table.servers[1]["cards"] == []
    text = view.report(table)
    assert "free for you" in text and "too old" in text and "0.0.9" in text


def test_last_choice_is_remembered_per_group_and_forgotten(tmp_path: Path) -> None:
    from labshare.connect import known

    memory = known.LastChoice(str(tmp_path), "lab")
    assert memory.load() is None
    memory.save("gpu2")
    assert memory.load() == "gpu2"
    assert known.LastChoice(str(tmp_path), "big").load() is None
    assert known.LastChoice(str(tmp_path), "lab", ("Port=2222",)).load() is None
    memory.forget()
    assert memory.load() is None
