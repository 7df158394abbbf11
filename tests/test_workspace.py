from __future__ import annotations

from pathlib import Path

from paths import REFERENCE_TARGET

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
