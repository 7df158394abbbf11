"""Releases as git refs of the team's own repository, read without touching it.

A target may give its releases as refs (tags, branches, commit ids) of a repository instead of
directories. The run needs only each ref's tree of ``project_dir``: those objects are copied
into the run's private workspace repository (``rev-list --objects`` of the tree into
``pack-objects``, indexed on the workspace's side), where each tree becomes a release commit.
Every command run in the team's repository only reads objects and refs (``rev-parse``,
``cat-file``, ``rev-list``, ``pack-objects --stdout``, with ``GIT_OPTIONAL_LOCKS=0``): its
working tree, index, refs and hooks are never used, so a dirty tree or a checkout of another
branch changes nothing. ``.gitattributes`` filters of the archive kind (``export-ignore``,
``export-subst``) do not apply either: the workspace gets the tree exactly as committed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rollback_drill.errors import TargetError

_ENV = {"GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0"}


def git_binary() -> str:
    """The git command, or a one-line error saying why the run needs it."""
    git = shutil.which("git")
    if git is None:
        raise TargetError(
            "git not found on PATH: releases (and the run's workspace) are git commits; "
            "install git (Debian: apt-get install git)"
        )
    return git


def _run(cwd: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [git_binary(), *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **_ENV},
    )


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else "no message"


def find_repository(path: Path) -> Path:
    """The top of the git work tree that holds ``path`` (or its nearest existing ancestor)."""
    start = path
    while not start.is_dir() and start != start.parent:
        start = start.parent
    proc = _run(start, "rev-parse", "--show-toplevel")
    if proc.returncode != 0 or not proc.stdout.strip():
        raise TargetError(f"{path} is in no git repository's work tree ({_last_line(proc.stderr)})")
    return Path(proc.stdout.strip()).resolve()


class RefError(TargetError):
    """A ref that is missing or lacks the project directory or a compose file."""

    def __init__(self, ref: str, message: str) -> None:
        super().__init__(message)
        self.ref = ref


@dataclass(frozen=True)
class Release:
    """One release read from a ref: its name (the ref as the target gives it), the commit the
    ref names now, and the tree of the project directory in that commit."""

    name: str
    commit: str
    tree: str


def read_releases(
    repository: Path, subdir: str, refs: list[str], files: list[str]
) -> list[Release]:
    """Resolve each ref to its commit and the tree of ``subdir``, checking that ``files`` (the
    compose files, relative to ``subdir``) are in it; one ``cat-file`` process for all.

    Errors are one line naming the ref and the repository."""
    prefix = f"{subdir}/" if subdir else ""
    specs: list[str] = []
    for ref in refs:
        specs += [f"{ref}^{{commit}}", f"{ref}:{subdir}"]
        specs += [f"{ref}:{prefix}{name}" for name in files]
    proc = _run(repository, "cat-file", "--batch-check", stdin="".join(s + "\n" for s in specs))
    if proc.returncode != 0:
        raise TargetError(
            f"cannot read repository {repository}: git cat-file: {_last_line(proc.stderr)}"
        )
    answers = dict(zip(specs, proc.stdout.splitlines(), strict=True))
    releases = []
    for ref in refs:
        commit = answers[f"{ref}^{{commit}}"].split()
        if len(commit) != 3 or commit[1] != "commit":
            raise RefError(
                ref,
                f"ref '{ref}' not found in repository {repository} "
                "(`git tag`, `git branch -a` list what it has)",
            )
        tree = answers[f"{ref}:{subdir}"].split()
        if len(tree) != 3 or tree[1] != "tree":
            raise RefError(
                ref,
                f"ref '{ref}' of repository {repository} has no directory '{subdir}' (project_dir)",
            )
        for name in files:
            if answers[f"{ref}:{prefix}{name}"].split()[-1] == "missing":
                raise RefError(
                    ref,
                    f"compose file {prefix}{name} not found in ref '{ref}' of repository "
                    f"{repository}",
                )
        releases.append(Release(ref, commit[0], tree[0]))
    return releases


_BAD_IN_REF = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//")


def valid_tag_name(name: str) -> bool:
    """Whether ``name`` can name a tag in the workspace (the release's own name is its tag):
    git's ``check-ref-format`` rules, read here rather than asked of git."""
    if not name or name == "@" or name.startswith(("-", "/")) or name.endswith(("/", ".")):
        return False
    if _BAD_IN_REF.search(name):
        return False
    return not any(part.startswith(".") or part.endswith(".lock") for part in name.split("/"))


def copy_trees(repository: Path, trees: list[str], workspace: Path) -> None:
    """Copy every object of ``trees`` from ``repository`` into the repository at ``workspace``:
    ``rev-list --objects | pack-objects --stdout`` there, streamed into ``index-pack --stdin``
    here (one pack; nothing is written on the team's side)."""
    git = git_binary()
    env = {**os.environ, **_ENV}
    with tempfile.TemporaryFile() as errors:
        with (
            subprocess.Popen(
                [git, "rev-list", "--objects", *trees],
                cwd=repository,
                stdout=subprocess.PIPE,
                stderr=errors,
                env=env,
            ) as listing,
            subprocess.Popen(
                [git, "pack-objects", "--stdout", "-q"],
                cwd=repository,
                stdin=listing.stdout,
                stdout=subprocess.PIPE,
                stderr=errors,
                env=env,
            ) as packing,
        ):
            assert listing.stdout is not None  # for mypy: both are pipes
            listing.stdout.close()  # pack-objects holds it now
            indexed = subprocess.run(
                [git, "index-pack", "--stdin"],
                cwd=workspace,
                stdin=packing.stdout,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                check=False,
                env=env,
            )
        errors.seek(0)
        message = _last_line(errors.read().decode(errors="replace"))
    if listing.returncode != 0 or packing.returncode != 0:
        raise TargetError(f"cannot read the releases' trees in repository {repository}: {message}")
    if indexed.returncode != 0:
        raise TargetError(f"cannot copy the releases into the workspace {workspace}: {message}")
