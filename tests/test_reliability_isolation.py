"""Isolation: two runs at the same time on one machine do not interfere.

Two pytest processes, started together with the same report directory, each bring up a stack
and take its deployment lock, then wait for each other: both stacks are up at the same time.
Each must pass, under its own Compose project, on its own host ports, with its own report
directory, journal and lock -- and leave nothing behind.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from reliability_support import NEEDS_DOCKER, DrillProcess, child_env, drill_dir, leftovers

pytestmark = [pytest.mark.docker, pytest.mark.nightly, NEEDS_DOCKER, pytest.mark.timeout(420)]

SIDE = """
import json, os, pathlib, time
from rollback_drill.lock import DeploymentLock

def test_side(fresh_stack, report_dir):
    st, me = fresh_stack, os.environ["I7_SIDE"]
    box = pathlib.Path(os.environ["I7_BOX"])
    other = box / ("b.json" if me == "a" else "a.json")
    lock = DeploymentLock.for_stack(st)
    held = lock.acquire(f"isolation drill {me}")  # both hold their own lock at once
    t, p = st.target.services, st.target.ports
    ports = {
        "nginx": st.port(t.nginx, p.nginx),
        "wsgi": st.port(t.wsgi, p.app),
        "postgres": st.port(t.postgres, p.postgres),
        "redis": st.port(t.redis, p.redis),
    }
    mine = {
        "project": st.project,
        "run": st.workspace.run_id,
        "ports": ports,
        "report_dir": str(report_dir),
        "lock": str(lock.path),
    }
    (box / f"{me}.json").write_text(json.dumps(mine))
    deadline = time.monotonic() + 300
    while not other.exists():  # the other run's stack is up too
        assert time.monotonic() < deadline, "the other run never came up"
        time.sleep(0.2)
    assert st.http_ok(st.target.paths.health)
    assert lock.holder().holder == f"isolation drill {me}"
    lock.release(held)
"""


@pytest.fixture
def client() -> Iterator[docker.DockerClient]:
    c = docker.from_env(timeout=60)
    yield c
    c.close()


def test_two_runs_at_once(tmp_path: Path, client: docker.DockerClient) -> None:
    box = tmp_path / "box"
    box.mkdir()
    procs: dict[str, DrillProcess] = {}
    try:
        for side in ("a", "b"):
            work = drill_dir(tmp_path / side, SIDE)
            env = child_env(I7_SIDE=side, I7_BOX=str(box))
            procs[side] = DrillProcess(work, ["--drill-require-docker"], env=env, out_dir=tmp_path)
        for side, proc in procs.items():
            assert proc.finish(400) == 0, f"run {side}:\n{proc.output()[-3000:]}"
        a, b = (json.loads((box / f"{side}.json").read_text()) for side in ("a", "b"))
        assert a["project"] != b["project"]
        assert not set(a["ports"].values()) & set(b["ports"].values()), (a["ports"], b["ports"])
        assert a["report_dir"] != b["report_dir"]
        assert Path(a["report_dir"]).parent == Path(b["report_dir"]).parent  # same base dir
        assert a["lock"] != b["lock"]
        for me, other in ((a, b), (b, a)):
            journal = (Path(me["report_dir"]) / "journal.jsonl").read_text()
            assert me["project"] in journal and other["project"] not in journal
        for side, proc in procs.items():
            for run in proc.run_ids():
                assert leftovers(client, run, proc.pid, proc.started) == [], side
    finally:
        for proc in procs.values():
            proc.close(client)
