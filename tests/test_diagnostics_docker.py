"""Failures you can diagnose, and drills that hang (issue 18.2, 18.3), on real stacks.

- A drill that hangs is stopped by its time limit (pytest-timeout's ``signal`` method), fails
  naming the journal step it hung in, is diagnosed while its stack is still up (service logs,
  ``compose ps``, the step) and its stack is then torn down: nothing of its run is left.
- A target whose app crashes at start fails the drill's set-up with the app's own log lines in
  the JUnit case and the HTML report (read before ``up`` took the stack down). Waiting out the
  stack's health deadline takes ~4 minutes: ``nightly``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import yaml
from reliability_support import (
    NEEDS_DOCKER,
    ROOT,
    DrillProcess,
    drill_dir,
    leftovers,
    workspaces_of,
)

pytestmark = [pytest.mark.docker, NEEDS_DOCKER, pytest.mark.timeout(600)]

HANGS = """
import time
import pytest

@pytest.mark.timeout(4, func_only=True)
def test_hangs(fresh_stack):
    with fresh_stack.journal.step("fault", "stuck_probe"):
        time.sleep(600)
"""

USES_A_STACK = """
def test_needs_a_stack(report_location, fresh_stack):  # report_location: the HTML report
    assert fresh_stack.http_ok(fresh_stack.target.paths.health)
"""


@pytest.fixture
def client() -> Iterator[docker.DockerClient]:
    c = docker.from_env(timeout=60)
    yield c
    c.close()


@pytest.fixture
def drills(client: docker.DockerClient) -> Iterator[list[DrillProcess]]:
    started: list[DrillProcess] = []
    yield started
    for proc in started:
        proc.close(client)


def _assert_clean(client: docker.DockerClient, proc: DrillProcess) -> None:
    runs = proc.run_ids()
    assert runs, f"no run id in the journal:\n{proc.output()[-3000:]}"
    for run in runs:
        left = leftovers(client, run, proc.pid, proc.started)
        assert not left, f"run {run} left {left}\n{proc.output()[-2000:]}"
        assert not workspaces_of(run), f"run {run} left its workspace"


def test_a_hung_drill_fails_naming_its_step_diagnosed_and_torn_down(
    tmp_path: Path, client: docker.DockerClient, drills: list[DrillProcess]
) -> None:
    xml = tmp_path / "junit.xml"
    proc = DrillProcess(drill_dir(tmp_path, HANGS), ["--drill-require-docker", f"--junitxml={xml}"])
    drills.append(proc)
    assert proc.finish(240) == 1, proc.output()[-3000:]
    out = proc.output()
    assert "drill timed out: time limit 4 s passed" in out, out[-3000:]
    assert "in step fault stuck_probe (running for 4 s)" in out, out[-3000:]
    junit = xml.read_text()
    for expected in (
        "drill timed out",
        "drill diagnostics",
        "failing step: fault stuck_probe",
        "$ docker compose ps -a",
        "$ docker compose logs --tail 40 nginx",
        "$ docker compose logs --tail 40 postgres",
    ):
        assert expected in junit, f"{expected!r} not in the JUnit case:\n{junit[-3000:]}"
    kinds = [(e["kind"], e.get("phase")) for e in proc.events()]
    diagnosed = kinds.index(("diagnostics", None))
    assert ("stack", "end") in kinds[diagnosed:], "diagnosed before the stack was taken down"
    _assert_clean(client, proc)


def crashing_app_target(tmp_path: Path) -> Path:
    """A copy of the reference target whose WSGI app exits at start, with a line on stderr."""
    compose = tmp_path / "compose"
    shutil.copytree(ROOT / "compose", compose, ignore=shutil.ignore_patterns("__pycache__"))
    text = (compose / "docker-compose.yml").read_text()
    after = '    command: ["/app/bin/wsgi"]\n'
    assert after in text
    crash = (
        '    entrypoint: ["sh", "-c", '
        '"echo ImportError: app crashed at start, drill-marker-4711 >&2; exit 3"]\n'
    )
    (compose / "docker-compose.yml").write_text(text.replace(after, after + crash, 1))
    data = yaml.safe_load((ROOT / "targets" / "reference.yaml").read_text())
    key = "project_dir" if "project_dir" in data else "compose_dir"  # (renamed: either)
    data[key] = str(compose)
    path = tmp_path / "target.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.nightly
def test_an_app_that_crashes_at_start_fails_with_its_logs_in_junit_and_html(
    tmp_path: Path, client: docker.DockerClient, drills: list[DrillProcess]
) -> None:
    xml = tmp_path / "junit.xml"
    target = crashing_app_target(tmp_path)
    proc = DrillProcess(
        drill_dir(tmp_path, USES_A_STACK),
        ["--drill-require-docker", f"--drill-target={target}", f"--junitxml={xml}"],
    )
    drills.append(proc)
    assert proc.finish(540) == 1, proc.output()[-3000:]
    junit = xml.read_text()
    (html,) = proc.report_dir.glob("*/report.html")
    for where, text in (("JUnit", junit), ("HTML report", html.read_text())):
        for expected in (
            "did not start",
            "drill-marker-4711",  # the app's own log line
            "$ docker compose ps -a",
            "logs --tail 40 backend-wsgi",
        ):
            assert expected in text, f"{expected!r} not in the {where}:\n{text[-3000:]}"
    _assert_clean(client, proc)
