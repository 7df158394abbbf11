"""A team's repository whose releases are git refs, built from examples/notes for the tests.

``team/`` holds the stack under ``stack/`` (so ``project_dir`` is a subdirectory of the
repository) and a README at its top. Tag ``v1``: examples/notes minus ``releases/`` and its
target file. Tag ``v2``: ``releases/v2`` applied on top, and ``.env.example`` deleted (a
deletion no overlay can express). The target file lives in ``team/drill/``, untracked.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from paths import REPO_ROOT

NOTES = REPO_ROOT / "examples" / "notes"
_IGNORED = shutil.ignore_patterns("__pycache__", "releases", "target.yaml", ".env")


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # our own look must not refresh its index
    cmd = ["git", "-c", "user.name=team", "-c", "user.email=team@localhost", *args]
    return subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True, env=env).stdout


def make_team_repo(base: Path, subdir: str = "stack") -> Path:
    """The repository, with the stack under ``subdir`` ("" for its top)."""
    team = base / "team"
    stack = team / subdir if subdir else team
    shutil.copytree(NOTES, stack, ignore=_IGNORED)
    (team / "README.md").write_text("the team's service\n")
    git(team, "init", "-q", "-b", "main")
    git(team, "add", "-A")
    git(team, "commit", "-q", "-m", "v1")
    git(team, "tag", "v1")
    shutil.copytree(NOTES / "releases" / "v2", stack, dirs_exist_ok=True, ignore=_IGNORED)
    (stack / ".env.example").unlink()
    git(team, "add", "-A")
    git(team, "commit", "-q", "-m", "v2")
    git(team, "tag", "-a", "-m", "release v2", "v2")  # annotated: the ref is a tag object
    return team


def write_target(team: Path, project_dir: str = "../stack", **releases: Any) -> Path:
    """The notes target with its releases as refs of ``team`` (``releases`` replace fields)."""
    data = yaml.safe_load((NOTES / "target.yaml").read_text())
    data["project_dir"] = project_dir
    data["releases"] = {"previous": "v1", "next": "v2", "stable_tag": "last-stable-release"}
    data["releases"].update(releases)
    path = team / "drill" / "target.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def snapshot(team: Path) -> dict[str, str]:
    """Every file of the repository, ``.git`` included, by content hash; and what git says."""
    files = {
        str(p.relative_to(team)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(team.rglob("*"))
        if p.is_file()
    }
    files["(status)"] = git(team, "status", "--porcelain", "--untracked-files=all")
    files["(refs)"] = git(team, "for-each-ref")
    files["(HEAD)"] = git(team, "rev-parse", "--symbolic-full-name", "HEAD")
    files["(worktrees)"] = git(team, "worktree", "list", "--porcelain")
    return files
