"""The run's builds leave the next run a cache (rollback_drill.stack.keep_build_cache): a team's
heavy image is not rebuilt from scratch by every drill, and nothing of a run stays but a tag."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from rollback_drill.stack import CACHE_REPOSITORY, RUN_LABEL, keep_build_cache, sweep_run
from rollback_drill.workspace import PID_LABEL

pytestmark = pytest.mark.docker


def _build(context: Path, tag: str, run_id: str) -> str:
    """A classic-builder build with the run's labels, as Compose does from the override."""
    proc = subprocess.run(
        ["docker", "build", "--label", "io.rollback-drill=1", "--label", f"{RUN_LABEL}={run_id}",
         "--label", f"{PID_LABEL}={os.getpid()}", "-t", tag, str(context)],
        capture_output=True, text=True, env={"DOCKER_BUILDKIT": "0", "PATH": "/usr/bin:/bin"},
        check=False, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_the_dockerfile_steps_are_kept_and_reused_by_the_next_run(
    docker_available: None, tmp_path: Path
) -> None:
    from rollback_drill.stack import docker_client

    marker = uuid.uuid4().hex  # a step no other build has cached
    (tmp_path / "Dockerfile").write_text(
        f"FROM rollback-drill/debian:bookworm\nRUN echo {marker} > /marker\nCOPY f /f\n"
    )
    (tmp_path / "f").write_text("x\n")
    client = docker_client()
    runs = [f"cache{uuid.uuid4().hex[:6]}" for _ in range(2)]
    cache = f"{CACHE_REPOSITORY}/cachetest-{marker[:8]}-app:latest"
    try:
        first = _build(tmp_path, f"rbd-{runs[0]}-app", runs[0])
        assert "Using cache" not in first.split(f"echo {marker}")[1].split("Step")[0]
        kept = keep_build_cache(client, runs[0], f"rbd-{runs[0]}", f"cachetest-{marker[:8]}")
        assert kept == [cache]
        cached = client.images.get(cache)
        labels = cached.labels or {}
        assert RUN_LABEL not in labels and PID_LABEL not in labels  # nothing of the run
        sweep_run(client, runs[0])  # the run's own images go, the cache stays
        client.images.get(cache)
        second = _build(tmp_path, f"rbd-{runs[1]}-app", runs[1])
        step = second.split(f"echo {marker}")[1].split("Step")[0]
        assert "Using cache" in step, second[-1500:]
    finally:
        for run in runs:
            sweep_run(client, run)
        subprocess.run(["docker", "rmi", cache], capture_output=True, check=False)
        client.close()
