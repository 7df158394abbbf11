"""The quick drill, once, watched from outside: it touches only its own objects, leaves none,
and no secret of its runs reaches an artifact.

One pytest run of ``drills/ -m quick`` (JUnit with captured output and logs, the drill report
directory in a temporary place) plus a probe drill that fails on purpose with secrets in its
assertion, output and log, while two decoys run: a lone container and a Compose project
(``rbd-decoy-*``), both labelled ``io.rollback-drill.owner=decoy-tests`` but without a run
label, with the reference stack's service names. A spy plugin writes each stack's secrets
(its workspace ``.env``) and live session keys (from its Redis) before teardown removes them.
Afterwards ``rollback-drill cleanup`` runs for the drill's run ids.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
from reliability_support import (
    DEBIAN,
    NEEDS_DOCKER,
    PYTHON,
    ROOT,
    DrillProcess,
    child_env,
    leftovers,
    workspaces_of,
)

pytestmark = [pytest.mark.docker, pytest.mark.nightly, NEEDS_DOCKER, pytest.mark.timeout(600)]

# The quick drills run here; `RBD_RELIABILITY_DRILLS=drills/` runs all of them (slower).
DRILLS = os.environ.get(
    "RBD_RELIABILITY_DRILLS", "drills/test_hybrid_deployment.py drills/test_rollback_phases.py"
).split()
SERVICES = ("nginx", "backend-wsgi", "backend-asgi", "postgres", "redis")
OWNER = {"io.rollback-drill.owner": "decoy-tests"}
SECRET_KEYS = ("POSTGRES_PASSWORD", "DJANGO_SECRET_KEY", "DRILL_PASSWORD", "DRILL_ADMIN_PASSWORD")

SPY = '''
"""Writes each stack's secrets and live session keys before its teardown removes them."""
import json, os, re, pathlib
import pytest
from rollback_drill.stack import Stack

OUT = pathlib.Path(os.environ["I7_SECRETS_OUT"])

def _stacks(item):
    for value in list(getattr(item, "funcargs", {}).values()):
        for st in (value, getattr(value, "stack", None)):
            if isinstance(st, Stack):
                yield st

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item, nextitem):
    for st in {id(s): s for s in _stacks(item)}.values():
        lines = st.workspace.env_file.read_text().splitlines()
        env = dict(line.split("=", 1) for line in lines if "=" in line)
        keys = []
        try:
            import redis
            with redis.Redis.from_url(st.redis_url(), socket_timeout=5) as r:
                for key in r.scan_iter("*django.contrib.sessions.cache*"):
                    keys.append(re.sub(r".*django\\.contrib\\.sessions\\.cache", "", key.decode()))
        except Exception as exc:  # Redis down after a fault: the .env still counts
            keys.append("")
        with OUT.open("a") as fh:
            fh.write(json.dumps({"run": st.workspace.run_id, "env": env, "sessions": keys}) + "\\n")
'''

PROBE = '''
"""A drill that fails on its secrets: the assertion, its output and its log name them."""
import json, logging, os, pathlib
import pytest
from rollback_drill.client import AppClient

pytestmark = [pytest.mark.quick]
log = logging.getLogger("leak-probe")

def test_a_drill_failing_on_its_secrets(fresh_stack):
    st = fresh_stack
    user, admin = st.workspace.user, st.workspace.admin
    print("database:", st.postgres_dsn())
    log.warning("admin password is %s", admin.password)
    with AppClient(st.base_url) as client:
        login = client.login(user.username, user.password)
        cookie = client.http.cookies.get("sessionid", "")
        seen = {"run": st.workspace.run_id, "env": {}, "sessions": [cookie]}
        with pathlib.Path(os.environ["I7_SECRETS_OUT"]).open("a") as fh:
            fh.write(json.dumps(seen) + "\\n")
        assert login.status == 299, login  # the answer's repr has its Set-Cookie header
    assert client.login(users.admin, admin.password).status == 0
'''


@dataclass
class QuickRun:
    proc: DrillProcess
    out: Path
    junit: Path
    decoys: dict[str, dict[str, Any]]  # container id -> its inspect at the start
    decoy_network: str
    decoy_volume: str
    since_ns: int
    secrets: list[dict[str, Any]]
    cleanup: subprocess.CompletedProcess[str]


def _compose_file(project: str) -> str:
    services = "".join(
        f"""
  {name}:
    image: {DEBIAN}
    command: ["sleep", "infinity"]
    init: true
    labels: *owner
    volumes: ["data:/data"]
"""
        for name in SERVICES
    )
    return (
        textwrap.dedent(
            f"""\
        name: {project}
        x-owner: &owner
          io.rollback-drill.owner: decoy-tests
        services:"""
        )
        + services
        + textwrap.dedent(
            """
        networks:
          default:
            labels: *owner
        volumes:
          data:
            labels: *owner
        """
        )
    )


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QuickRun]:
    client = docker.from_env(timeout=120)
    out = tmp_path_factory.mktemp("quick")
    tag = uuid.uuid4().hex[:6]
    project = f"rbd-decoy-{tag}"
    (out / "decoy").mkdir()
    (out / "decoy" / "docker-compose.yml").write_text(_compose_file(project))
    compose = ["docker", "compose", "-p", project, "-f", str(out / "decoy" / "docker-compose.yml")]
    lone = None
    proc = None
    try:
        lone = client.containers.run(
            DEBIAN,
            ["sleep", "infinity"],
            detach=True,
            init=True,
            name=f"i7decoy-{tag}-nginx",
            labels={**OWNER, "com.docker.compose.service": "backend-asgi"},
        )
        subprocess.run([*compose, "up", "-d", "--quiet-pull"], check=True, capture_output=True)
        ids = [lone.id] + [
            c.id
            for c in client.containers.list(
                all=True, filters={"label": f"com.docker.compose.project={project}"}
            )
        ]
        assert len(ids) == 1 + len(SERVICES)
        decoys = {cid: client.api.inspect_container(cid) for cid in ids}
        assert all(d["State"]["Running"] for d in decoys.values())
        since_ns = time.time_ns()
        (out / "spy").mkdir()
        (out / "spy" / "i7_secret_spy.py").write_text(SPY)
        probe = out / "probe" / "test_leak_probe.py"
        probe.parent.mkdir()
        probe.write_text(PROBE)
        env = child_env(
            PYTHONPATH=f"{ROOT}:{out / 'spy'}", I7_SECRETS_OUT=str(out / "secrets.jsonl")
        )
        junit = out / "junit.xml"
        proc = DrillProcess(
            ROOT,
            [
                *DRILLS,
                str(probe),
                "-m",
                "quick",
                "-p",
                "i7_secret_spy",
                "--drill-require-docker",
                f"--junitxml={junit}",
                "-o",
                "junit_logging=all",
            ],
            env=env,
            out_dir=out,
        )
        proc.finish(540)
        runs = sorted(proc.run_ids())
        cleanup = subprocess.run(
            [str(PYTHON), "-m", "rollback_drill.cli", "cleanup"]
            + [arg for run in runs for arg in ("--run", run)],
            capture_output=True,
            text=True,
            env=child_env(),
            timeout=300,
            check=False,
        )
        secrets = [json.loads(line) for line in (out / "secrets.jsonl").read_text().splitlines()]
        yield QuickRun(
            proc,
            out,
            junit,
            decoys,
            f"{project}_default",
            f"{project}_data",
            since_ns,
            secrets,
            cleanup,
        )
    finally:
        if proc is not None:
            proc.close(client)
        subprocess.run([*compose, "down", "-v", "-t", "1"], capture_output=True, check=False)
        if lone is not None:
            lone.remove(force=True)
        client.close()


def test_the_quick_drill_ran(quick_run: QuickRun) -> None:
    """The probe fails on purpose; the drills' own outcome is theirs (and not needed here)."""
    out = quick_run.proc.output()
    assert quick_run.proc.proc.returncode == 1, out[-3000:]
    assert "FAILED ::test_a_drill_failing_on_its_secrets - AssertionError: Answer(" in out
    assert " passed" in out.splitlines()[-1], out[-3000:]
    assert quick_run.cleanup.returncode == 0, quick_run.cleanup.stderr


def test_decoys_are_untouched(quick_run: QuickRun) -> None:
    client = docker.from_env()
    try:
        for cid, before in quick_run.decoys.items():
            now = client.api.inspect_container(cid)  # same id: still there
            assert now["State"]["Running"], now["Name"]
            assert now["State"]["StartedAt"] == before["State"]["StartedAt"], now["Name"]
            assert now["RestartCount"] == before["RestartCount"] == 0, now["Name"]
            assert not now["ExecIDs"], f"{now['Name']} was exec'd into: {now['ExecIDs']}"
            assert now["State"]["Paused"] is False
        events = list(
            client.api.events(
                since=quick_run.since_ns // 10**9,
                until=int(time.time()) + 1,
                filters={"container": list(quick_run.decoys)},
                decode=True,
            )
        )
        touched = [
            f"{e.get('Action')} {e.get('Actor', {}).get('Attributes', {}).get('name')}"
            for e in events
            if int(e.get("timeNano", 0)) > quick_run.since_ns
        ]
        assert touched == [], f"the run acted on decoys: {touched}"
        assert client.networks.get(quick_run.decoy_network)
        assert client.volumes.get(quick_run.decoy_volume)
    finally:
        client.close()


def test_nothing_of_the_run_is_left(quick_run: QuickRun) -> None:
    runs = quick_run.proc.run_ids()
    assert len(runs) >= 3, runs  # the drills and the probe, each its own stack
    client = docker.from_env()
    try:
        for run in runs:
            left = leftovers(client, run, quick_run.proc.pid, quick_run.proc.started)
            assert left == [], f"run {run} left {left}"
            assert not workspaces_of(run)
    finally:
        client.close()
    # so the cleanup had nothing to do
    assert quick_run.cleanup.stdout.strip() == "cleanup: 0 object(s) removed"


def test_no_secret_reaches_an_artifact(quick_run: QuickRun) -> None:
    secrets: dict[str, str] = {}
    for entry in quick_run.secrets:
        for key in SECRET_KEYS:
            if entry["env"].get(key):
                secrets[entry["env"][key]] = f"{key} of run {entry['run']}"
        for session in entry["sessions"]:
            if session:
                secrets[session] = f"session cookie of run {entry['run']}"
    runs = {e["run"] for e in quick_run.secrets if e["env"]}
    assert runs == quick_run.proc.run_ids(), "the spy saw every stack"
    assert sum("session" in what for what in secrets.values()) >= 2, secrets.values()
    artifacts = [quick_run.junit, quick_run.proc.log]
    artifacts += [p for p in quick_run.proc.report_dir.rglob("*") if p.is_file()]
    names = {p.name for p in artifacts}
    assert {"junit.xml", "journal.jsonl", "report.html"} <= names, names
    # the probe's secrets were in its captured output, log and failure: JUnit has those parts
    junit = quick_run.junit.read_text()
    assert "database: postgresql://" in junit and "admin password is ***" in junit
    found = []
    for path in artifacts:
        text = path.read_text(errors="replace")
        found += [f"{what} in {path.name}" for secret, what in secrets.items() if _in(secret, text)]
    assert found == []


def _in(secret: str, text: str, window: int = 12) -> bool:
    """Whether any ``window`` characters of ``secret`` appear in ``text``: a repr cut in the
    middle (pytest shortens long ones to "...") still leaks the rest of a random token."""
    return any(secret[i : i + window] in text for i in range(max(1, len(secret) - window + 1)))
