"""A run's workspace made from releases as git refs vs as overlays, on examples/notes.

    .venv/bin/python bench/workspace_releases.py [--reps 5]

Overlays: ``examples/notes/target.yaml`` as it is (v1 the directory on disk, v2 its overlay).
Git refs: the same two releases as tags ``v1``/``v2`` of a repository built in a temporary
directory by ``tests/team_repo.py`` (the stack under ``stack/``). Three timings each, the two
forms alternated so that both see the same machine load, medians of ``--reps``:
``create_workspace`` whole (releases, env file, override, post-checkout hook, checkout of the
previous release), the releases step alone (commits and tags), and ``load_target`` (which for
git refs resolves both refs and looks for the compose files in them). No Docker, no network.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from team_repo import make_team_repo, write_target  # noqa: E402

from rollback_drill import workspace  # noqa: E402
from rollback_drill.target import Target, load_target  # noqa: E402


def _ms(seconds: list[float]) -> str:
    runs = " ".join(f"{s * 1000:.0f}" for s in seconds)
    return f"median {statistics.median(seconds) * 1000:5.0f} ms  (runs: {runs})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    reps = parser.parse_args().reps
    base = Path(tempfile.mkdtemp(prefix="bench-ws-"))
    try:
        files = {
            "overlays": ROOT / "examples" / "notes" / "target.yaml",
            "git refs": write_target(make_team_repo(base)),
        }
        targets = {name: load_target(path) for name, path in files.items()}
        steps: dict[str, Callable[[Target, Path], None]] = {
            "overlays": workspace._releases_from_overlays,
            "git refs": workspace._releases_from_git,
        }
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(reps):
            for name, target in targets.items():
                t = time.perf_counter()
                ws = workspace.create_workspace(target, base=base)
                times.setdefault(("create_workspace", name), []).append(time.perf_counter() - t)
                ws.remove()
                root = Path(tempfile.mkdtemp(dir=base))
                t = time.perf_counter()
                steps[name](target, root)
                times.setdefault(("releases step", name), []).append(time.perf_counter() - t)
                shutil.rmtree(root)
                t = time.perf_counter()
                load_target(files[name])
                times.setdefault(("load_target", name), []).append(time.perf_counter() - t)
        print(f"{reps} repetitions, load average {os.getloadavg()[0]:.1f} at the end")
        for (what, name), seconds in times.items():
            print(f"{what:17s} {name:9s} {_ms(seconds)}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
