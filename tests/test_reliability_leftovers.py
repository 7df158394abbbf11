"""No leftovers: whatever way a run ends, nothing labelled with its run id stays in Docker.

Each test runs pytest on a tiny drill using the ``fresh_stack`` fixture in a subprocess, ends it
one way (success, a failing drill, a stack that fails to start, SIGINT, SIGTERM, SIGKILL then
``rollback-drill cleanup``) and then looks for any container, network, volume or image of that
run -- by its run label, its Compose project name, and the image layers its process built.
The per-change CI runs the pass-and-fail case; the interruptions are ``nightly``
(``make engine-nightly``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import yaml
from reliability_support import (
    DEBIAN,
    NEEDS_DOCKER,
    PID_LABEL,
    PYTHON,
    ROOT,
    DrillProcess,
    child_env,
    drill_dir,
    leftovers,
    poll,
    workspaces_of,
)

from rollback_drill.stack import RUN_LABEL

pytestmark = [pytest.mark.docker, NEEDS_DOCKER, pytest.mark.timeout(300)]

HOLD = """
import os, pathlib

def test_hold(fresh_stack):
    pathlib.Path(os.environ["I7_MARKER"]).write_text(fresh_stack.workspace.run_id)
    redis = fresh_stack.target.services.redis
    while True:  # an infrastructure fault, again and again, until the run is interrupted
        fresh_stack.stop(redis, timeout=1)
        fresh_stack.start(redis)
"""

PASS_AND_FAIL = """
def test_passes(fresh_stack):
    assert fresh_stack.http_ok(fresh_stack.target.paths.health)

def test_fails(fresh_stack):
    assert fresh_stack.http_ok("/no-such-page/"), "a drill that fails"
"""


@pytest.fixture(scope="module")
def client() -> Iterator[docker.DockerClient]:
    try:
        c = docker.from_env(timeout=60)
        c.ping()
    except docker.errors.DockerException as exc:
        pytest.skip(f"needs Docker: {exc}")
    yield c
    c.close()


@pytest.fixture
def drills(client: docker.DockerClient) -> Iterator[list[DrillProcess]]:
    """The test's pytest subprocesses; whatever happens, killed and their runs' objects removed."""
    started: list[DrillProcess] = []
    yield started
    for proc in started:
        proc.close(client)


def assert_clean(client: docker.DockerClient, proc: DrillProcess, runs: set[str]) -> None:
    assert runs, f"no run id in the journal:\n{proc.output()[-3000:]}"
    for run in runs:
        left = leftovers(client, run, proc.pid, proc.started)
        assert not left, f"run {run} left {left}\n{proc.output()[-2000:]}"
        assert not workspaces_of(run), f"run {run} left its workspace"


def broken_target(tmp_path: Path, edit: str, after: str) -> Path:
    """A copy of the reference target whose compose file has ``edit`` inserted after ``after``."""
    compose = tmp_path / "compose"
    shutil.copytree(ROOT / "compose", compose, ignore=shutil.ignore_patterns("__pycache__"))
    text = (compose / "docker-compose.yml").read_text()
    assert after in text
    (compose / "docker-compose.yml").write_text(text.replace(after, after + edit, 1))
    data = yaml.safe_load((ROOT / "targets" / "reference.yaml").read_text())
    data["project_dir"] = str(compose)
    path = tmp_path / "target.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_nothing_left_after_a_passing_and_a_failing_drill(
    tmp_path: Path, client: docker.DockerClient, drills: list[DrillProcess]
) -> None:
    proc = DrillProcess(drill_dir(tmp_path, PASS_AND_FAIL), ["--drill-require-docker"])
    drills.append(proc)
    assert proc.finish(240) == 1, proc.output()[-3000:]
    out = proc.output()
    assert "1 failed, 1 passed" in out, out[-3000:]
    assert len(proc.run_ids()) == 2
    assert_clean(client, proc, proc.run_ids())


@pytest.mark.nightly
def test_nothing_left_after_a_stack_that_fails_to_start(
    tmp_path: Path, client: docker.DockerClient, drills: list[DrillProcess]
) -> None:
    # redis exits at once: `up` fails after networks, volumes and postgres were created
    target = broken_target(
        tmp_path,
        '    entrypoint: ["sh", "-c", "echo broken redis >&2; exit 3"]\n',
        after="  redis:\n    image: rollback-drill/redis:bookworm\n",
    )
    work = drill_dir(tmp_path, PASS_AND_FAIL.split("def test_fails")[0])
    proc = DrillProcess(work, ["--drill-require-docker", f"--drill-target={target}"])
    drills.append(proc)
    assert proc.finish(240) == 1, proc.output()[-3000:]
    out = proc.output()
    # the error section is one line naming the cause, not a traceback through the fixtures
    section = out.split("ERROR at setup of test_passes")[1].splitlines()[1:3]
    assert section[0].startswith("StackError: stack rbd-"), out[-3000:]
    assert "did not start: " in section[0] and "redis-1 is unhealthy" in section[0], section
    assert section[1].startswith("---"), section
    assert_clean(client, proc, proc.run_ids())


@pytest.mark.parametrize(
    ("sig", "group"),
    [(signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=["SIGINT-to-group(Ctrl-C)", "SIGTERM-to-pytest"],
)
@pytest.mark.parametrize("moment", ["starting", "faulting"])
@pytest.mark.nightly
def test_nothing_left_after_an_interrupt(
    tmp_path: Path,
    client: docker.DockerClient,
    drills: list[DrillProcess],
    sig: signal.Signals,
    group: bool,
    moment: str,
) -> None:
    marker = tmp_path / "marker"
    env = child_env(I7_MARKER=str(marker))
    proc = DrillProcess(drill_dir(tmp_path, HOLD), ["--drill-require-docker"], env=env)
    drills.append(proc)
    if moment == "starting":  # the stack is being brought up: its first container exists
        ev = proc.wait_event(lambda e: e.get("kind") == "drill", 60, "the drill to start")
        run = str(ev["project"]).removeprefix("rbd-")
        poll(
            lambda: (
                proc.proc.poll() is None
                and client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run}"})
            ),
            180,
            f"a container of run {run}",
            interval_s=0.1,
        )
    else:  # the stack is up and a fault (stop/start redis) is running
        run = proc.wait_file(marker, 240)
    proc.signal(sig, group=group)
    rc = proc.finish(180)
    assert rc == pytest.ExitCode.INTERRUPTED, f"exit {rc}\n{proc.output()[-3000:]}"
    assert run in proc.run_ids()
    assert_clean(client, proc, proc.run_ids())


@pytest.mark.nightly
def test_cleanup_removes_a_killed_run_and_spares_a_live_one(
    tmp_path: Path, client: docker.DockerClient, drills: list[DrillProcess]
) -> None:
    marker = tmp_path / "marker"
    env = child_env(I7_MARKER=str(marker))
    proc = DrillProcess(drill_dir(tmp_path, HOLD), ["--drill-require-docker"], env=env)
    drills.append(proc)
    live_run = f"i7live{os.getpid()}"
    live = client.containers.run(
        DEBIAN,
        ["sleep", "infinity"],
        detach=True,
        name=f"rbd-{live_run}-redis-1",
        labels={
            "io.rollback-drill": "1",
            RUN_LABEL: live_run,
            PID_LABEL: str(os.getpid()),  # this test's process: alive
            "io.rollback-drill.owner": "decoy-tests",
        },
    )
    try:
        dead_run = proc.wait_file(marker, 240)
        assert leftovers(client, dead_run), "the stack should be up"
        proc.signal(signal.SIGKILL, group=True)
        proc.finish(30)
        assert leftovers(client, dead_run), "SIGKILL leaves the stack behind"
        assert workspaces_of(dead_run), "and its workspace, with its secrets"
        # a cleanup narrowed to these two runs (other people's runs on this machine are theirs)
        res = subprocess.run(
            [
                str(PYTHON),
                "-m",
                "rollback_drill.cli",
                "cleanup",
                "--run",
                dead_run,
                "--run",
                live_run,
            ],
            capture_output=True,
            text=True,
            env=child_env(),
            timeout=180,
            check=False,
        )
        assert res.returncode == 0, res.stderr
        assert f"container rbd-{dead_run}-" in res.stdout
        assert live_run not in res.stdout
        assert_clean(client, proc, {dead_run})
        live.reload()
        assert live.status == "running"
    finally:
        live.remove(force=True)


@pytest.mark.nightly
def test_nothing_left_after_a_second_interrupt_during_teardown(
    tmp_path: Path, client: docker.DockerClient, drills: list[DrillProcess]
) -> None:
    """Ctrl-C pressed again while the stack is being taken down: the teardown still finishes."""
    marker = tmp_path / "marker"
    env = child_env(I7_MARKER=str(marker))
    proc = DrillProcess(drill_dir(tmp_path, HOLD), ["--drill-require-docker"], env=env)
    drills.append(proc)
    run = proc.wait_file(marker, 240)
    proc.signal(signal.SIGINT, group=True)
    proc.wait_event(
        lambda e: (e.get("kind"), e.get("name"), e.get("phase")) == ("stack", "down", "start"),
        60,
        "the teardown to start",
    )
    proc.signal(signal.SIGINT, group=True)
    proc.signal(signal.SIGTERM)
    rc = proc.finish(180)
    assert rc == pytest.ExitCode.INTERRUPTED, f"exit {rc}\n{proc.output()[-3000:]}"
    assert_clean(client, proc, {run})
