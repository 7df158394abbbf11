"""The faulty hybrid release: a real release commit whose defect lives in its tree.

A faulty release is built in the run's workspace exactly like the good one: the good release's
commit (``hybrid``) plus an overlay directory (``target.releases.overlays[<name>]``, under
``compose/releases/``) copied on top, plus the release's own defect configuration written into
the tree as ``app/release_defect.json`` (the level of the defect: an error share, a delay, a
memory cap). It is committed and tagged ``<name>`` and then deployed for real (build, up,
migrate, nginx config swap), so the image, the migrations and the nginx config carry the
defect -- nothing in the good release's request path is switched.

Reverting deploys the good release again (what the fault protocol needs to undo it; the plan's
rollback is the rollback package's business). Data a faulty migration rewrote stays rewritten.
A drill whose stack is thrown away afterwards (or whose rollback replaced the release) calls
``abandon()`` instead: the end is journaled, nothing is redeployed.

``live_at``: a defect in the app containers serves from the moment the new containers are
healthy and the old ones gone (the deploy's ``SERVING`` event); a defect behind nginx's
routing (ASGI paths, the nginx config itself, a migration) is live when the deployment
finished.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from rollback_drill.deploy import SERVING, deploy_release
from rollback_drill.errors import FaultError, NotOnThisTarget
from rollback_drill.faults.base import BaseFault, Effect
from rollback_drill.journal import Journal
from rollback_drill.stack import Stack
from rollback_drill.workspace import Workspace, mark_release

__all__ = ["DEFECT_FILE", "FaultyRelease", "build_release"]

DEFECT_FILE = "app/release_defect.json"
LiveFrom = Literal["containers", "deployed"]
Observer = Callable[["FaultyRelease"], Effect]


def build_release(
    workspace: Workspace,
    name: str,
    overlay: Path,
    *,
    base: str,
    config: Mapping[str, Any] | None = None,
    marker_file: str | None = None,
) -> str:
    """Commit ``base`` + ``overlay`` + the defect config as release ``name``; returns the commit.

    Idempotent for the same content (an existing tag ``name`` is kept when its tree is the
    same); the workspace's checked-out commit is left as it was.
    """
    if not overlay.is_dir():
        raise FaultError(f"release {name}: overlay {overlay} is not a directory")
    head = workspace.head()
    try:
        workspace.checkout(base)
        _copy_over(overlay, workspace.root)
        if config is not None:
            path = workspace.root / DEFECT_FILE
            path.write_text(json.dumps(dict(config), indent=2, sort_keys=True) + "\n")
        mark_release(workspace.root, marker_file, name)
        workspace.git("add", "-A")
        existing = workspace.git("tag", "--list", name)
        if existing:
            tree_now = workspace.git("write-tree")
            tree_tagged = workspace.git("rev-parse", f"{name}^{{tree}}")
            if tree_now != tree_tagged:
                raise FaultError(f"release {name} already exists with another content")
            workspace.git("reset", "-q", "--hard")
            return workspace.git("rev-parse", f"{name}^{{commit}}")
        workspace.git("commit", "-q", "-m", f"release {name} (faulty: built by the drill)")
        workspace.git("tag", name)
        commit = workspace.head()
        workspace.commits[name] = commit
        return commit
    finally:
        workspace.git("reset", "-q", "--hard")
        workspace.checkout(head)


def _copy_over(src: Path, dst: Path) -> None:
    for item in src.iterdir():
        if item.name == "__pycache__":
            continue
        target = dst / item.name
        if item.is_dir():
            target.mkdir(exist_ok=True)
            _copy_over(item, target)
        else:
            shutil.copy2(item, target)


class FaultyRelease(BaseFault):
    """Build and deploy a faulty release; revert by deploying the good one again.

    ``deploy``: how to deploy a workspace tag (default :func:`deploy_release`; a drill passes
    its harness's deploy so that monitor and load follow). ``observer``: the defect's proof,
    one look at the running stack. ``live_from``: see the module docstring.
    """

    family: ClassVar[Literal["release"]] = "release"
    verify_interval_s: ClassVar[float] = 0.3

    def __init__(
        self,
        stack: Stack,
        release: str,
        *,
        config: Mapping[str, Any] | None = None,
        observer: Observer,
        live_from: LiveFrom = "containers",
        deploy: Callable[[str], object] | None = None,
        good_release: str | None = None,
        journal: Journal | None = None,
        describe: str = "",
    ) -> None:
        if release not in stack.target.releases.overlays:
            raise NotOnThisTarget(
                f"needs the reference release {release!r}: target {stack.target.name} ships "
                "no such release (releases.overlays)"
            )
        params: dict[str, Any] = {"release": release, **(config or {})}
        if describe:
            params["defect"] = describe
        super().__init__(release, journal if journal is not None else stack.journal, params)
        self.stack = stack
        self.release = release
        self.config = dict(config or {})
        self.observer = observer
        self.live_from = live_from
        self.good_release = good_release or stack.target.releases.next
        self._deploy = deploy or (lambda tag: deploy_release(stack, tag))
        self.commit: str | None = None
        self.before_deploy: Callable[[], None] | None = None  # e.g. write a canary
        self.after_revert: Callable[[], None] | None = None  # e.g. close the probe's session
        self._deploying = False

    def build(self) -> str:
        """Commit the faulty release in the workspace (done by :meth:`apply` when needed)."""
        if self.commit is None:
            overlay = self.stack.target.overlay_dir(self.release)
            self.commit = build_release(
                self.stack.workspace,
                self.release,
                overlay,
                base=self.good_release,
                config=self.config or None,
                marker_file=self.stack.target.releases.marker_file,
            )
        return self.commit

    def _apply(self) -> float | None:
        self.build()
        if self.before_deploy is not None:
            self.before_deploy()
        journal = self.stack.journal
        before = len(journal.events)
        self._deploying = True
        self._deploy(self.release)
        if self.live_from == "deployed":
            return None
        for ev in journal.events[before:]:
            if ev.kind == "deploy" and ev.name == SERVING:
                return ev.wall
        return None

    def _revert(self) -> None:
        try:
            if self._deploying and self.stack.current_release() != self.good_release:
                self._deploy(self.good_release)
            self._deploying = False
        finally:
            if self.after_revert is not None:
                self.after_revert()

    def observe(self) -> Effect:
        return self.observer(self)
