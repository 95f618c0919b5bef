"""The pure parts of envs: pyproject edits, project detection on real folder layouts, labels, pruning."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import tomllib

from labshare.config.project import labshare_settings
from labshare.envs import kernels, naming, projects
from labshare.envs.detect import detect
from labshare.envs.pyproject_edit import migrate_rye, set_labshare_env
from labshare.envs.undo import undone_on_failure
from labshare.errors import LabshareError

pytestmark = pytest.mark.quick  # pure: scripts/test runs it first, as an ordinary user


def fake_env(prefix: Path, *, venv: bool = True, conda: bool = False) -> Path:
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "python").symlink_to("/usr/bin/python3")
    if venv:
        (prefix / "pyvenv.cfg").write_text("home = /usr/bin\nversion_info = 3.11.2\n")
    if conda:
        (prefix / "conda-meta").mkdir()
    return prefix


def pyproject(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(text)
    return folder


BASIC = '[project]\nname = "demo"\nversion = "0.1.0"\n'


def test_an_unknown_tool_labshare_key_names_itself_the_file_and_the_closest_key(
    tmp_path: Path,
) -> None:
    where = tmp_path / "pyproject.toml"
    with pytest.raises(LabshareError) as typo:
        labshare_settings(tomllib.loads(BASIC + "[tool.labshare]\ngpu = 0\n"), where)
    assert typo.value.message == (
        f"{where}: [tool.labshare] has no key `gpu`; did you mean `gpus`? "
        "Fix or remove it, then try again."
    )
    with pytest.raises(
        LabshareError, match=re.escape("has no key `python`; the keys are `env` and `gpus`.")
    ):
        labshare_settings(tomllib.loads(BASIC + "[tool.labshare]\npython = '3.12'\n"), where)
    valid = tomllib.loads(BASIC + "[tool.labshare]\ngpus = 1\nenv = { A = '1' }\n")
    assert labshare_settings(valid, where) == {"gpus": 1, "env": {"A": "1"}}
    assert labshare_settings(tomllib.loads(BASIC), where) == {}


def test_adopt_stops_at_a_typo_before_anything_is_asked_or_changed(tmp_path: Path) -> None:
    folder = pyproject(tmp_path / "p", BASIC + "[tool.labshare]\nenvs = { A = '1' }\n")
    fake_env(folder / ".venv")
    places = kernels.KernelPlaces(user=tmp_path / "kernels", search=(tmp_path / "kernels",))
    with pytest.raises(
        LabshareError,
        match=r"pyproject.toml: \[tool.labshare\] has no key `envs`; did you mean `env`",
    ):
        projects.plan_adopt(places, folder)


def test_rye_migration_moves_only_the_dev_dependencies(tmp_path: Path) -> None:
    text = (
        '[project]\nname = "x"  # keep this comment\n\n[tool.rye]\nmanaged = true\n'
        'dev-dependencies = [\n    "pytest>=8",  # tests\n    "ruff[extra]",\n]\nvirtual = true\n'
    )
    new = migrate_rye(text, tmp_path / "pyproject.toml")
    assert new is not None and 'name = "x"  # keep this comment' in new
    data = tomllib.loads(new)
    assert data["tool"]["rye"] == {"managed": True, "virtual": True}
    assert data["dependency-groups"] == {"dev": ["pytest>=8", "ruff[extra]"]}
    assert migrate_rye(new, tmp_path / "pyproject.toml") is None


def test_rye_migration_merges_into_an_existing_dev_group(tmp_path: Path) -> None:
    text = '[tool.rye]\ndev-dependencies = ["pytest", "ipykernel"]\n\n[dependency-groups]\ndev = ["ipykernel"]\n'
    data = tomllib.loads(migrate_rye(text, tmp_path / "p") or "")
    assert data["dependency-groups"]["dev"] == ["ipykernel", "pytest"] and data["tool"]["rye"] == {}


def test_labshare_env_edits_keep_the_rest_of_the_file(tmp_path: Path) -> None:
    where = tmp_path / "pyproject.toml"
    one = set_labshare_env(BASIC, where, {"CUDA_VISIBLE_DEVICES": "0"})
    assert one.startswith(BASIC) and tomllib.loads(one)["tool"]["labshare"]["env"] == {
        "CUDA_VISIBLE_DEVICES": "0"
    }
    two = set_labshare_env(one, where, {"A": "x y", "CUDA_VISIBLE_DEVICES": None})
    assert tomllib.loads(two)["tool"]["labshare"]["env"] == {"A": "x y"}
    table = BASIC + '\n[tool.labshare.env]\nA = "1"\n\n[tool.z]\nb = 2\n'
    three = tomllib.loads(set_labshare_env(table, where, {"B": "2"}))
    assert three["tool"]["labshare"]["env"] == {"A": "1", "B": "2"} and three["tool"]["z"] == {
        "b": 2
    }
    with pytest.raises(LabshareError):
        set_labshare_env("tool.labshare.env = 3\n", where, {"A": "1"})


def test_edits_keep_the_members_comments_and_layout(tmp_path: Path) -> None:
    where = tmp_path / "pyproject.toml"
    table = BASIC + '\n[tool.labshare.env]\nA = "1"  # the first card\n'
    assert set_labshare_env(table, where, {"B": "2"}) == table + 'B = "2"\n'
    inline = BASIC + '\n[tool.labshare]\nenv = { A = "1" }  # cards\n'
    assert set_labshare_env(inline, where, {"B": "2"}) == inline.replace('"1" }', '"1", B = "2" }')
    grouped = '[tool.rye]\ndev-dependencies = ["pytest"]\n\n[dependency-groups]\ndev = [\n  "ruff",  # lint\n]\n'
    assert migrate_rye(grouped, where) == grouped.replace(
        'dev-dependencies = ["pytest"]\n', ""
    ).replace("# lint\n", '# lint\n  "pytest",\n')
    with pytest.raises(LabshareError, match="written inline"):
        migrate_rye(
            'dependency-groups = { lint = ["ruff"] }\n[tool.rye]\ndev-dependencies = ["x"]\n', where
        )


def test_a_failed_change_is_undone_and_a_good_one_kept(tmp_path: Path) -> None:
    kept = tmp_path / "kept.toml"
    kept.write_text("old\n")
    kept.chmod(0o640)
    folder = tmp_path / "has"
    folder.mkdir()
    (folder / "mine").write_text("x")
    with pytest.raises(KeyboardInterrupt), undone_on_failure() as undo:
        undo.file(kept)
        undo.file(tmp_path / "new.lock")
        undo.made(tmp_path / "a" / "b" / "env")
        undo.new_entries(folder)
        kept.write_text("new\n")
        (tmp_path / "new.lock").write_text("lock")
        (tmp_path / "a" / "b" / "env").mkdir(parents=True)
        (folder / "added").mkdir()
        raise KeyboardInterrupt
    assert kept.read_text() == "old\n" and kept.stat().st_mode & 0o777 == 0o640
    assert sorted(os.listdir(tmp_path)) == ["has", "kept.toml"] and os.listdir(folder) == ["mine"]
    with undone_on_failure() as undo:
        undo.file(kept)
        kept.write_text("new\n")
    assert kept.read_text() == "new\n"


def test_bad_env_options_are_refused() -> None:
    for bad in ("NOPE", "1X=2", "PATH=/x", "A B=1"):
        with pytest.raises(LabshareError):
            projects.parse_env_pairs([bad])
    assert projects.parse_env_pairs(["A=1", "B="]) == {"A": "1", "B": None}


def test_detects_each_manager_and_its_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UV_PROJECT_ENVIRONMENT", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    uvp = pyproject(tmp_path / "uvp", BASIC + "[tool.uv]\npackage = false\n")
    assert (detect(uvp).manager, detect(uvp).env) == ("uv", uvp / ".venv")

    monkeypatch.setenv("UV_PROJECT_ENVIRONMENT", "envs/here")
    assert detect(uvp).env == uvp / "envs/here"
    monkeypatch.setenv("UV_PROJECT_ENVIRONMENT", str(tmp_path / "elsewhere"))
    assert detect(uvp).env == tmp_path / "elsewhere"
    monkeypatch.delenv("UV_PROJECT_ENVIRONMENT")

    root = pyproject(tmp_path / "ws", BASIC + '[tool.uv.workspace]\nmembers = ["packages/*"]\n')
    member = pyproject(root / "packages" / "one", BASIC.replace("demo", "one") + "[tool.uv]\n")
    assert detect(member).env == root / ".venv"

    poetry = pyproject(tmp_path / "po", '[tool.poetry]\nname = "po"\n')
    fake_env(poetry / ".venv")
    found = detect(poetry)
    assert (found.manager, found.env, found.label) == ("poetry", poetry / ".venv", "po")

    pdm = pyproject(tmp_path / "pdmp", BASIC)
    env = fake_env(tmp_path / "pdm-envs" / "x")
    (pdm / ".pdm-python").write_text(str(env / "bin" / "python"))
    assert (detect(pdm).manager, detect(pdm).env) == ("pdm", env)

    conda = fake_env(tmp_path / "miniconda" / "envs" / "ml", venv=False, conda=True)
    assert (detect(conda).manager, detect(conda).env) == ("conda", conda)

    plain = tmp_path / "plain"
    fake_env(plain / "venv")
    assert (detect(plain).manager, detect(plain).env) == ("venv", plain / "venv")

    rye = pyproject(tmp_path / "r", BASIC + "[tool.rye]\nvirtual = true\n")
    assert detect(rye).manager == "rye"

    with pytest.raises(LabshareError, match="No Python project"):
        detect(pyproject(tmp_path / "toolonly", "[tool.black]\nline-length = 80\n"))


def test_labels_add_the_shortest_distinguishing_path() -> None:
    items = [
        ("analysis", "3.11.2", "/h/a/x/analysis"),
        ("analysis", "3.11.2", "/h/b/x/analysis"),
        ("analysis", "3.11.2", "/h/b/y/analysis"),
        ("other", "3.12.0", "/h/other"),
    ]
    labels = naming.distinct_labels(items)
    assert labels == [
        "a/x/analysis (Python 3.11)",
        "b/x/analysis (Python 3.11)",
        "y/analysis (Python 3.11)",
        "other (Python 3.12)",
    ]
    assert naming.distinct_labels([("a", "3.11", "/p/a")], taken=["a (Python 3.11)"]) == [
        "p/a (Python 3.11)"
    ]


def test_spec_names_are_stable_lowercase_and_distinct(tmp_path: Path) -> None:
    (tmp_path / "My_Project").mkdir()
    (tmp_path / "my_project").mkdir()
    one, two = naming.spec_name(tmp_path / "My_Project"), naming.spec_name(tmp_path / "my_project")
    assert one != two and one == naming.spec_name(tmp_path / "My_Project")
    assert one.startswith("labshare-my-project-") and one != "python3"


def _target(project: Path, python: Path) -> kernels.Target:
    return kernels.Target(
        project=project,
        env=project / ".venv",
        python=python,
        python_version="3.11.2",
        manager="uv",
        label=project.name,
    )


def test_prune_stale_removes_only_labshare_specs_that_cannot_start(tmp_path: Path) -> None:
    places = kernels.KernelPlaces(user=tmp_path / "kernels", search=(tmp_path / "kernels",))
    live, dead = tmp_path / "live", tmp_path / "dead"
    live.mkdir()
    dead.mkdir()
    python = fake_env(live / ".venv") / "bin" / "python"
    kernels.register(places, _target(live, python))
    name, _, dead_dir = kernels.register(places, _target(dead, dead / ".venv" / "bin" / "python"))
    foreign = places.user / "foreign"
    foreign.mkdir()
    (foreign / "kernel.json").write_text(
        json.dumps({"argv": ["/gone/python"], "display_name": "F"})
    )

    assert kernels.prune_stale(places.user) == [name]
    assert not dead_dir.exists() and foreign.is_dir()
    assert sorted(os.listdir(places.user)) == sorted(["foreign", naming.spec_name(live)])


def test_register_is_atomic_and_updates_in_place(tmp_path: Path) -> None:
    places = kernels.KernelPlaces(user=tmp_path / "kernels", search=(tmp_path / "kernels",))
    project = tmp_path / "proj"
    project.mkdir()
    python = fake_env(project / ".venv") / "bin" / "python"
    first = kernels.register(places, _target(project, python))
    second = kernels.register(places, _target(project, python))
    assert first == second
    assert [p.name for p in places.user.iterdir()] == [first[0]]
    assert sorted(p.name for p in first[2].iterdir() if p.name.startswith(".")) == []


def test_a_moved_project_gets_a_new_kernel_and_the_old_one_is_pruned(tmp_path: Path) -> None:
    places = kernels.KernelPlaces(
        user=tmp_path / "jupyter" / "kernels", search=(tmp_path / "jupyter" / "kernels",)
    )
    before = tmp_path / "a" / "proj"
    before.mkdir(parents=True)
    fake_env(before / ".venv")
    old_name, _, _ = kernels.register(places, _target(before, before / ".venv" / "bin" / "python"))
    after = tmp_path / "b" / "proj"
    after.parent.mkdir()
    before.rename(after)
    new_name, display, _ = kernels.register(
        places, _target(after, after / ".venv" / "bin" / "python")
    )
    assert new_name != old_name and display == "proj (Python 3.11)"
    assert [e.name for e in kernels.prune_candidates(places)] == [old_name]
    assert kernels.prune_stale(places.user) == [old_name]
    assert os.listdir(places.user) == [new_name] and os.listdir(places.user.parent) == ["kernels"]


def test_listing_marks_shadowed_duplicate_and_stale(tmp_path: Path) -> None:
    user, system = tmp_path / "user" / "kernels", tmp_path / "system" / "kernels"
    places = kernels.KernelPlaces(user=user, search=(user, system))

    def spec(where: Path, name: str, python: str, display: str) -> None:
        (where / name).mkdir(parents=True)
        (where / name / "kernel.json").write_text(
            json.dumps({"argv": [python], "display_name": display})
        )

    spec(user, "same", "/usr/bin/python3", "Same")
    spec(system, "same", "/usr/bin/python3", "Same (system)")
    spec(user, "one", "/usr/bin/python3", "Python (Rye)")
    spec(system, "two", "/usr/bin/python3", "Python (Rye)")
    spec(user, "dead", "/nowhere/python", "Dead")
    seen = {(e.name, Path(e.resource_dir).parent): e for e in kernels.list_kernels(places)}
    assert seen["same", user].status == "ok" and seen["same", system].status == "shadowed"
    assert seen["one", user].status == seen["two", system].status == "duplicate label"
    assert seen["dead", user].status == "stale" and seen["dead", user].owner == "foreign"
    assert [e.name for e in kernels.prune_candidates(places)] == []
    assert [e.name for e in kernels.prune_candidates(places, foreign=True)] == ["dead"]
