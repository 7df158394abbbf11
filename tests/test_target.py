from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from paths import REFERENCE_TARGET
from team_repo import git, make_team_repo, write_target

from rollback_drill import release_refs
from rollback_drill.errors import TargetError
from rollback_drill.target import load_target


def test_reference_target_loads_with_resolved_compose_dir() -> None:
    target = load_target(REFERENCE_TARGET)
    assert target.services.asgi == "backend-asgi"
    assert (target.compose_dir / "docker-compose.yml").is_file()
    assert target.overlay_dir("hybrid").is_dir()
    assert target.migration_rollback == {"ai_model": "0010", "chat_session": "0010"}


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="target file not found"):
        load_target(tmp_path / "nope.yaml")


def test_unknown_field_names_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "t.yaml"
    bad.write_text(REFERENCE_TARGET.read_text() + "surprise: 1\n")
    with pytest.raises(TargetError, match=r"field 'surprise'"):
        load_target(bad)


def test_missing_compose_file_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "t.yaml"
    text = REFERENCE_TARGET.read_text().replace("../compose", str(tmp_path))
    bad.write_text(text)
    with pytest.raises(TargetError, match=r"compose file .* not found"):
        load_target(bad)


def test_bad_yaml(tmp_path: Path) -> None:
    bad = tmp_path / "t.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(TargetError, match="not valid YAML"):
        load_target(bad)


def test_unknown_overlay() -> None:
    with pytest.raises(TargetError, match="no overlay for release 'nope'"):
        load_target(REFERENCE_TARGET).overlay_dir("nope")


def _reference_with(tmp_path: Path, old: str, new: str) -> Path:
    text = REFERENCE_TARGET.read_text()
    assert old in text
    path = tmp_path / "t.yaml"
    path.write_text(text.replace("../compose", str(REFERENCE_TARGET.parent.parent / "compose"))
                    .replace(old, new))  # fmt: skip
    return path


def test_a_schema_1_file_is_named_as_such(tmp_path: Path) -> None:
    path = _reference_with(tmp_path, "schema: 2\n", "")
    with pytest.raises(TargetError, match=r"field 'schema': this suite reads target schema 2"):
        load_target(path)


def test_an_undefined_reference_names_field_and_variable(tmp_path: Path) -> None:
    path = _reference_with(tmp_path, "password: ${POSTGRES_PASSWORD}", "password: ${DB_PW}")
    with pytest.raises(
        TargetError, match=r"field 'database.password': \$\{DB_PW\} is not defined in env"
    ):
        load_target(path)


def test_a_bad_env_name_names_the_field(tmp_path: Path) -> None:
    path = _reference_with(tmp_path, "generated: [POSTGRES_PASSWORD", "generated: [2BAD")
    with pytest.raises(TargetError, match=r"field 'env.generated': .*'2BAD'"):
        load_target(path)


def test_the_example_stack_target_loads() -> None:
    target = load_target(REFERENCE_TARGET.parent.parent / "examples/notes/target.yaml")
    assert target.services.wsgi == "web" and target.service("asgi") == "live"
    assert target.ports.asgi_port == 8001 and target.users.create is not None
    assert target.images["nginx:1.22"] == "rollback-drill/nginx:bookworm"


def test_the_irreversible_release_is_named_by_both_targets() -> None:
    example = load_target(REFERENCE_TARGET.parent.parent / "examples/notes/target.yaml")
    assert example.releases.irreversible == "v2-irreversible"
    reference = load_target(REFERENCE_TARGET)
    assert reference.releases.irreversible == "hybrid-irreversible-migration"


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("nope", "'nope' is not a release of releases.overlays"),
        ("hybrid", "the same as releases.next"),
    ],
)
def test_the_irreversible_release_is_one_of_the_overlays(
    tmp_path: Path, name: str, said: str
) -> None:
    path = _reference_with(
        tmp_path,
        "  irreversible: hybrid-irreversible-migration\n",
        f"  irreversible: {name}\n",
    )
    with pytest.raises(TargetError, match=f"field 'releases.irreversible': {said}"):
        load_target(path)


# Releases as git refs (tests/team_repo.py builds the team's repository).


@pytest.fixture
def team(tmp_path: Path) -> Path:
    return make_team_repo(tmp_path)


def test_releases_as_git_refs_of_the_repository_holding_project_dir(team: Path) -> None:
    target = load_target(write_target(team))
    assert target.releases.from_git and target.releases.repository == team.resolve()
    assert target.project_dir == (team / "stack").resolve() and target.release_subdir == "stack"


def test_an_explicit_repository_is_relative_to_the_target_file(team: Path) -> None:
    target = load_target(write_target(team, repository=".."))
    assert target.releases.repository == team.resolve()


@pytest.mark.parametrize("key", ["previous", "next"])
def test_a_missing_ref_names_the_ref_and_the_repository(team: Path, key: str) -> None:
    with pytest.raises(
        TargetError,
        match=rf"target.yaml: field 'releases.{key}': ref 'v9' not found in repository {team}",
    ):
        load_target(write_target(team, **{key: "v9"}))


def test_a_compose_file_missing_from_a_ref_is_named(team: Path) -> None:
    git(team, "rm", "-q", "stack/compose.yaml")
    git(team, "commit", "-q", "-m", "v3 without compose")
    git(team, "tag", "v3")
    with pytest.raises(
        TargetError,
        match=r"field 'releases.next': compose file stack/compose.yaml not found in ref 'v3'",
    ):
        load_target(write_target(team, next="v3"))


def test_project_dir_outside_any_repository(tmp_path: Path, team: Path) -> None:
    path = write_target(team)
    text = path.read_text().replace("project_dir: ../stack", f"project_dir: {tmp_path}")
    path.write_text(text)
    with pytest.raises(TargetError, match=r"field 'project_dir': .* in no git repository"):
        load_target(path)


def test_project_dir_outside_the_given_repository(tmp_path: Path, team: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    with pytest.raises(TargetError, match=r"field 'project_dir': .* not inside the releases'"):
        load_target(write_target(team, repository=str(other)))


def test_a_ref_that_cannot_name_a_tag(team: Path) -> None:
    with pytest.raises(TargetError, match=r"field 'releases.previous': 'v2~1' cannot name a tag"):
        load_target(write_target(team, previous="v2~1"))


def test_repository_and_an_overlay_for_next_are_two_answers(team: Path) -> None:
    with pytest.raises(TargetError, match=r"field 'releases.repository': .* not both"):
        load_target(write_target(team, repository="..", overlays={"v2": "releases/v2"}))


def test_the_same_release_twice(team: Path) -> None:
    with pytest.raises(TargetError, match=r"field 'releases.next': the same as releases.previous"):
        load_target(write_target(team, next="v1"))
    with pytest.raises(TargetError, match=r"field 'releases.stable_tag'"):
        load_target(write_target(team, stable_tag="v1"))


def test_without_git_the_error_says_so(
    team: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_target(team)
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(TargetError, match=r"git not found on PATH"):
        load_target(path)


@pytest.mark.parametrize(
    "name",
    ["v1.4.2", "release/2026-12", "3f2a9c1", "HEAD~1", "v1^{}", "a..b", "a/.b", "x.lock", "a b",
     "a:b", "a//b", "a/", "a.", "@", "a@{1}", "-x", "[x]", "a\\b", "Ωmega", "v1@x"],
)  # fmt: skip
def test_tag_names_as_git_reads_them(name: str) -> None:
    ok = subprocess.run(["git", "check-ref-format", f"refs/tags/{name}"], check=False)
    refused = name.startswith("-") or name == "@"  # an option; HEAD's other name: refused too
    assert release_refs.valid_tag_name(name) == (ok.returncode == 0 and not refused)
