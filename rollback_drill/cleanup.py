"""What ``rollback-drill cleanup`` removes: the containers, networks, volumes, images and
workspaces of runs whose process is gone (a SIGKILL, a crashed CI job), found by the suite's
labels and nothing else; ``--all`` takes the runs ``up`` kept too; ``--images`` the registry
names runs tagged onto the suite's own images. ``rollback-drill down`` (``session``) removes
one kept run through the same code.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from rollback_drill.signals._docker import docker_client, list_containers
from rollback_drill.stack import sweep
from rollback_drill.workspace import KEPT_FILE, KEPT_LABEL, PID_LABEL, RUN_LABEL

__all__ = ["cleanup", "run_workspaces", "untag_stand_ins"]


def _alive(pid: int) -> bool:
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_workspaces() -> dict[str, tuple[Path, int]]:
    """Run workspaces in the temporary directory: run id -> (directory, pid of its run)."""
    found: dict[str, tuple[Path, int]] = {}
    for env_file in Path(tempfile.gettempdir()).glob("rbd-*-*/.env"):
        try:
            lines = env_file.read_text().splitlines()
        except OSError:
            continue
        env = dict(line.partition("=")[::2] for line in lines if "=" in line)
        run, pid = env.get("RBD_RUN_ID", ""), env.get("RBD_RUN_PID", "0")
        if run and env_file.parent.name.startswith(f"rbd-{run}-"):
            found[run] = (env_file.parent, int(pid) if pid.isdigit() else 0)
    return found


def cleanup(all_runs: bool = False, only: Sequence[str] = ()) -> list[str]:
    client = docker_client()
    runs: dict[str, int] = {}
    kept: set[str] = set()  # left running on purpose by `rollback-drill up`
    for c in list_containers(client, {"label": RUN_LABEL}):
        labels = c.labels
        runs[labels[RUN_LABEL]] = int(labels.get(PID_LABEL, "0") or 0)
        if labels.get(KEPT_LABEL) == "1":
            kept.add(labels[RUN_LABEL])
    for kind in (client.networks, client.volumes, client.images):
        for obj in kind.list(filters={"label": RUN_LABEL}):
            labels = obj.attrs.get("Labels") or obj.attrs.get("Config", {}).get("Labels") or {}
            runs.setdefault(labels.get(RUN_LABEL, ""), int(labels.get(PID_LABEL, "0") or 0))
            if labels.get(KEPT_LABEL) == "1":
                kept.add(labels.get(RUN_LABEL, ""))
    workspaces = run_workspaces()
    for run, (root, pid) in workspaces.items():
        runs.setdefault(run, pid)
        if (root / KEPT_FILE).is_file():
            kept.add(run)
    removed: list[str] = []
    for run, pid in sorted(runs.items()):
        if not run or (only and run not in only):
            continue
        if not all_runs and (run in kept or _alive(pid)):
            continue
        removed += sweep(client, f"{RUN_LABEL}={run}")
        if run in workspaces:
            shutil.rmtree(workspaces[run][0], ignore_errors=True)
            removed.append(f"workspace {workspaces[run][0]}")
    return removed


def untag_stand_ins() -> list[str]:
    """Remove the registry names that runs tagged onto the suite's local images (a target's
    ``images`` map): only extra tags of images carrying the suite's labels, never an image."""
    client = docker_client()
    removed: list[str] = []
    for label in ("io.rollback-drill", "io.rollback-drill.base"):
        for image in client.images.list(filters={"label": label}):
            for tag in image.tags:
                if not tag.startswith("rollback-drill/"):
                    client.images.remove(tag, noprune=True)
                    removed.append(f"tag {tag}")
    return removed
