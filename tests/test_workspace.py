from __future__ import annotations

from pathlib import Path

import pytest
from paths import REFERENCE_TARGET
from team_repo import NOTES, git, make_team_repo, snapshot, write_target

from rollback_drill.errors import TargetError
from rollback_drill.faults.release import build_release
from rollback_drill.override import OVERRIDE_FILE
from rollback_drill.target import load_target
from rollback_drill.workspace import create_workspace

RELEASE_FILE = "app/RELEASE"  # the reference target's releases.marker_file


def test_releases_are_commits_and_previous_is_checked_out(tmp_path: Path) -> None:
    target = load_target(REFERENCE_TARGET)
    ws = create_workspace(target, run_id="unit0001", base=tmp_path)
    try:
        assert ws.project == "rbd-unit0001"
        assert set(ws.commits) == {"pre-hybrid", "hybrid"}
        assert ws.head() == ws.commits["pre-hybrid"]
        assert (ws.root / RELEASE_FILE).read_text().strip() == "pre-hybrid"
        assert ws.git("rev-parse", "last-stable-release^{commit}") == ws.commits["pre-hybrid"]
        assert not (ws.root / "releases").exists() and not (ws.root / "images").exists()
        pre_conf = (ws.root / "nginx/nginx.conf").read_text()
        ws.checkout("hybrid")
        assert (ws.root / RELEASE_FILE).read_text().strip() == "hybrid"
        assert (ws.root / "nginx/nginx.conf").read_text() != pre_conf
        assert ws.git("rev-parse", "HEAD~1") == ws.commits["pre-hybrid"]
        env = (ws.root / ".env").read_text()
        assert f"POSTGRES_PASSWORD={ws.database.password}" in env
        assert "RBD_RUN_ID=unit0001" in env
        assert ws.database.password in ws.secrets.all()
        assert ws.user.username == "drill_user" and ws.user.password in ws.secrets.all()
        assert ws.admin.username == "drill_admin" and ws.admin.password in ws.secrets.all()
        assert ws.database.name == "arena_production" and ws.database.user == "arena_user"
        assert ".env" not in ws.git("ls-files")
    finally:
        ws.remove()
    assert not ws.root.exists()


def test_each_workspace_gets_fresh_secrets(tmp_path: Path) -> None:
    target = load_target(REFERENCE_TARGET)
    a = create_workspace(target, base=tmp_path)
    b = create_workspace(target, base=tmp_path)
    try:
        assert a.project != b.project
        assert set(a.secrets.all()).isdisjoint(b.secrets.all())
    finally:
        a.remove()
        b.remove()


# Releases as git refs of the team's own repository (tests/team_repo.py builds it).


@pytest.fixture
def team(tmp_path: Path) -> Path:
    return make_team_repo(tmp_path)


def _files(team: Path, ref: str) -> set[str]:
    return set(git(team, "ls-tree", "-r", "--name-only", f"{ref}:stack").split())


def test_git_refs_become_the_workspaces_release_commits(team: Path, tmp_path: Path) -> None:
    target = load_target(write_target(team, exclude=["README.md"]))
    ws = create_workspace(target, run_id="refs0001", base=tmp_path)
    try:
        assert set(ws.commits) == {"v1", "v2"}
        assert ws.head() == ws.commits["v1"]
        assert ws.git("rev-parse", "last-stable-release^{commit}") == ws.commits["v1"]
        assert ws.git("rev-parse", "HEAD~0") == ws.git("rev-parse", "v2~1")
        for ref in ("v1", "v2"):
            ws.checkout(ref)
            assert set(ws.git("ls-files").split()) == _files(team, ref) - {"README.md"}
            compose = git(team, "show", f"{ref}:stack/compose.yaml")
            assert (ws.root / "compose.yaml").read_text() == compose
        assert (ws.root / "compose.yaml").read_text() == (
            NOTES / "releases/v2/compose.yaml"
        ).read_text()
        assert not (ws.root / ".env.example").exists()  # v2 deleted it: a ref can, an overlay not
        ws.checkout("v1")
        assert (ws.root / ".env.example").is_file()
        assert not (ws.root / "README.md").exists()  # excluded (the stack's own README)
        v1 = git(team, "rev-parse", "v1^{commit}").strip()
        assert f"v1 = {v1} of {team.resolve()}, directory stack" in ws.git("log", "-1")
        env = ws.env_file.read_text()
        assert "RBD_RUN_ID=refs0001" in env and f"POSTGRES_PASSWORD={ws.database.password}" in env
        assert ".env" not in ws.git("ls-files").split()
        assert not ws.git("status", "--porcelain").strip()
        assert (ws.root / ".rollback").is_dir()  # the override followed the checkout
    finally:
        ws.remove()


def test_without_exclude_or_marker_a_release_is_the_refs_tree_itself(
    team: Path, tmp_path: Path
) -> None:
    ws = create_workspace(load_target(write_target(team)), base=tmp_path)
    try:
        for ref in ("v1", "v2"):
            assert (
                ws.git("rev-parse", f"{ref}^{{tree}}")
                == git(team, "rev-parse", f"{ref}:stack").strip()
            )
    finally:
        ws.remove()


def test_the_marker_file_is_written_into_each_ref_release(team: Path, tmp_path: Path) -> None:
    ws = create_workspace(load_target(write_target(team, marker_file="RELEASE")), base=tmp_path)
    try:
        assert (ws.root / "RELEASE").read_text() == "v1\n"
        ws.checkout("v2")
        assert (ws.root / "RELEASE").read_text() == "v2\n"
    finally:
        ws.remove()


def test_the_team_repository_is_read_never_touched(team: Path, tmp_path: Path) -> None:
    """Dirty tree, staged change, another branch checked out: the workspace has what the refs
    hold, and nothing of the team's repository (files, index, refs, HEAD) changes."""
    path = write_target(team)
    git(team, "checkout", "-q", "-b", "feature", "v1")
    (team / "stack" / "compose.yaml").write_text("not: a release\n")  # dirty
    (team / "stack" / "scratch.txt").write_text("untracked\n")
    (team / "README.md").write_text("staged\n")
    git(team, "add", "README.md")
    target = load_target(path)
    before = snapshot(team)
    ws = create_workspace(target, base=tmp_path)
    try:
        assert snapshot(team) == before
        assert (ws.root / "compose.yaml").read_text() == git(team, "show", "v1:stack/compose.yaml")
        assert not (ws.root / "scratch.txt").exists()
        ws.checkout("v2")  # the workspace's own hooks and refs, not the team's
        ws.git("tag", "drill-only")
    finally:
        ws.remove()
    assert snapshot(team) == before
    assert "drill-only" not in git(team, "tag")


def test_a_ref_gone_since_loading_names_ref_and_repository(team: Path, tmp_path: Path) -> None:
    target = load_target(write_target(team))
    git(team, "tag", "-d", "v2")
    with pytest.raises(TargetError, match=rf"ref 'v2' not found in repository {team.resolve()}"):
        create_workspace(target, base=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["team"]  # no half-made workspace left


def test_a_faulty_release_overlay_applies_on_top_of_the_next_ref(
    team: Path, tmp_path: Path
) -> None:
    broken = team / "stack" / "releases" / "v2-broken"  # on disk, beside the refs
    (broken / "deploy" / "nginx").mkdir(parents=True)
    (broken / "deploy" / "nginx" / "default.conf").write_text("not nginx\n")
    target = load_target(write_target(team, overlays={"v2-broken": "releases/v2-broken"}))
    assert target.releases.from_git
    ws = create_workspace(target, base=tmp_path)
    try:
        commit = build_release(
            ws, "v2-broken", target.overlay_dir("v2-broken"), base=target.releases.next
        )
        assert ws.git("rev-parse", f"{commit}~1") == ws.commits["v2"]
        assert ws.git("show", "v2-broken:deploy/nginx/default.conf") == "not nginx"
        assert ws.head() == ws.commits["v1"]
    finally:
        ws.remove()


def test_a_branch_as_a_release(team: Path, tmp_path: Path) -> None:
    """``previous: main``, a branch (moved here to v1's commit): the workspace holds only the
    releases' tags, no branch of its own, so the name means the release."""
    git(team, "checkout", "-q", "-b", "work", "v1")
    git(team, "branch", "-f", "main", "v1")
    ws = create_workspace(load_target(write_target(team, previous="main")), base=tmp_path)
    try:
        assert ws.git("for-each-ref", "--format=%(refname)").split() == [
            "refs/tags/last-stable-release",
            "refs/tags/main",
            "refs/tags/v2",
        ]
        assert ws.head() == ws.commits["main"] == ws.git("rev-parse", "main")
        assert ws.checkout("v2") == ws.commits["v2"]
        assert ws.checkout("main") == ws.commits["main"]
    finally:
        ws.remove()


def test_project_dir_at_the_top_of_the_repository(tmp_path: Path) -> None:
    team = make_team_repo(tmp_path, subdir="")
    target = load_target(write_target(team, project_dir="..", exclude=["README.md"]))
    assert target.release_subdir == ""
    ws = create_workspace(target, base=tmp_path)
    try:
        assert (
            ws.git("rev-parse", "v2:compose.yaml")
            == git(team, "rev-parse", "v2:compose.yaml").strip()
        )
        assert "README.md" not in ws.git("ls-files").split()
    finally:
        ws.remove()


@pytest.mark.parametrize("form", ["overlays", "git refs"])
def test_the_users_global_git_config_stays_out(
    form: str, team: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A global ``core.hooksPath``, signing, and a template whose pre-commit hook refuses: the
    run's repository has none of them, and its own post-checkout hook still writes the
    override after a checkout."""
    template = tmp_path / "template" / "hooks"
    template.mkdir(parents=True)
    (template / "pre-commit").write_text("#!/bin/sh\nexit 1\n")
    (template / "pre-commit").chmod(0o755)
    config = tmp_path / "gitconfig"
    config.write_text(
        f"[init]\n\ttemplateDir = {template.parent}\n[core]\n\thooksPath = {tmp_path}/nowhere\n"
        "[commit]\n\tgpgSign = true\n[tag]\n\tgpgSign = true\n"
    )
    target = load_target(write_target(team) if form == "git refs" else REFERENCE_TARGET)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    ws = create_workspace(target, base=tmp_path)
    try:
        (ws.root / OVERRIDE_FILE).unlink()
        ws.checkout(target.releases.next)
        assert (ws.root / OVERRIDE_FILE).is_file()
    finally:
        ws.remove()
