"""The executor's fallback to Phase 5 and Phase 1's stop of an ongoing deployment, without
Docker: phases replaced by stand-ins that record a step and fail or pass, a stack stand-in
whose deployment is a thread of this process running a real (harmless) child process."""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from rollback_drill.announce import FileSink
from rollback_drill.compose import run_command
from rollback_drill.defects import DefectLog
from rollback_drill.deployments import (
    TOKEN_ENV,
    DeploymentRecord,
    record_path,
    running_deployment,
    stop_request,
    token_processes,
)
from rollback_drill.errors import LockHeld, RollbackError, StackError
from rollback_drill.journal import Journal
from rollback_drill.lock import DeploymentLock, LockInfo
from rollback_drill.rollback import RollbackContext, executor, run_rollback
from rollback_drill.rollback.fallback import DataLossWindow
from rollback_drill.rollback.phase1 import take_lock
from rollback_drill.rollback.steps import PhaseRun


class FakeContainer:
    def __init__(self, cid: str, removed: list[str]) -> None:
        self.id, self.name, self.attrs = cid, f"c-{cid}", {"Config": {"Image": "app:new"}}
        self._removed = removed

    def stop(self, timeout: int = 10) -> None:
        pass

    def remove(self, v: bool = False, force: bool = False) -> None:
        self._removed.append(self.id)


class FakeStack:
    """What the executor and Phase 1 touch: journal, state directory, containers, DSN."""

    def __init__(self, root: Path) -> None:
        self.journal = Journal()
        self.workspace = SimpleNamespace(state_dir=root / "state", root=root)
        self.project = "rbd-test"
        self.removed: list[str] = []
        self.existing: dict[str, list[FakeContainer]] = {}

    def containers(self, service: str | None = None) -> list[FakeContainer]:
        return [c for c in self.existing.get(service or "", []) if c.id not in self.removed]

    def forget_ports(self) -> None:
        pass

    def postgres_dsn(self) -> str:
        raise StackError("postgres is not published in this test")


def context(tmp_path: Path, **kw: Any) -> RollbackContext:
    stack = FakeStack(tmp_path)
    backups = SimpleNamespace(dump_started=time.time() - 60.0)
    return RollbackContext(
        stack,  # type: ignore[arg-type]
        reason="test",
        sink=FileSink(tmp_path / "announce.txt"),
        defects=DefectLog(stack.journal),
        backups=backups,  # type: ignore[arg-type]
        holder="test rollback",
        probe_plan=False,
        **kw,
    )


def passing(run: PhaseRun) -> None:
    run.action("work", "a step that works", lambda: "done")


def failing(run: PhaseRun) -> None:
    def boom() -> str:
        raise RollbackError("docker compose build backend-wsgi: exit 1")

    run.action("build_wsgi", "docker compose build backend-wsgi", boom)


@pytest.fixture
def phases(monkeypatch: pytest.MonkeyPatch) -> dict[int, Any]:
    runners: dict[int, Any] = {n: passing for n in range(1, 6)}
    monkeypatch.setattr(executor, "PHASE_RUNNERS", runners)
    return runners


def test_a_failing_phase_falls_back_to_phase_5_and_the_result_says_so(
    tmp_path: Path, phases: dict[int, Any]
) -> None:
    phases[3] = failing
    ctx = context(tmp_path)
    result = run_rollback(ctx, (1, 3, 4))
    assert [p.phase for p in result.phases] == [1, 3, 5]  # phase 4 never ran
    assert [p.status for p in result.phases] == ["ok", "failed", "ok"]
    assert result.fallback and result.failure is not None
    assert result.failure.phase == 3 and result.failure.step == "build_wsgi"
    assert "exit 1" in result.failure.error
    assert result.label == "1→3→5" and not result.ok and result.rolled_back
    assert result.error is None
    # no ledger, no PostgreSQL: the window is reported as not measured, with the reason
    assert result.data_loss is not None and result.data_loss.source == "not measured"
    assert "postgres is not published" in result.data_loss.note
    props = result.properties()
    assert props["failed_phase"] == 3 and props["fallback"] == "phase 5"
    assert str(props["failure"]).startswith("phase 3 (Full Rollback (Code + Config)), step build")
    assert str(props["failure"]).count("phase 3") == 1
    assert props["data_loss_source"] == "not measured" and float(props["data_loss_window_s"]) > 0
    assert props["budget_s"] == sum(p.budget_s for p in result.phases)
    names = [(e.kind, e.name) for e in ctx.stack.journal.events]
    assert ("rollback", "fallback to phase 5") in names
    assert ("rollback", "data-loss window") in names


@pytest.mark.parametrize(
    ("seq", "failing_phase", "kw"),
    [
        pytest.param((1, 3), 5, {}, id="phase-5-fails-too"),
        pytest.param((5,), 5, {}, id="phase-5-alone"),
        pytest.param((1, 2), 2, {"fallback": False}, id="fallback-off"),
    ],
)
def test_no_fallback_raises_the_failure(
    tmp_path: Path, phases: dict[int, Any], seq: tuple[int, ...], failing_phase: int, kw: Any
) -> None:
    phases[failing_phase] = failing
    if seq == (1, 3):
        phases[3] = failing
    ctx = context(tmp_path, **kw)
    with pytest.raises(RollbackError, match="build_wsgi"):
        run_rollback(ctx, seq)


def test_lock_held_by_another_rollback_never_falls_back(
    tmp_path: Path, phases: dict[int, Any]
) -> None:
    ctx = context(tmp_path)
    other = ctx.lock.acquire("another rollback")
    phases[1] = take_lock
    ran: list[int] = []
    phases[5] = lambda run: ran.append(5)
    with pytest.raises(LockHeld, match="held by another rollback"):
        run_rollback(ctx, (1, 2))
    assert ran == [] and ctx.lock.holder().same_holder(other)  # type: ignore[union-attr]


def test_a_lock_whose_holder_is_gone_is_taken_over_with_a_note(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    lock = ctx.lock
    lock.path.parent.mkdir(parents=True)
    gone = LockInfo("deployment of hybrid", 2147480000, socket.gethostname(), 1.0, "1", "abc")
    lock.path.write_text(json.dumps(dataclasses.asdict(gone)))
    run = PhaseRun(ctx, 1)
    take_lock(run)
    assert lock.holder().holder == "test rollback"  # type: ignore[union-attr]
    assert any("whose process is gone" in s for s in ctx.stopped)
    assert [s.name for s in run.result.steps] == ["lock"]


def test_data_loss_window_describes_what_phase_5_lost() -> None:
    w = DataLossWindow(100.0, 160.0, "ledger", 12, 5, ("a", "b", "c", "d", "e"))
    assert w.window_s == 60.0
    assert "5 of 12 acknowledged writes in it lost (a, b, c, d, e)" in w.describe()
    assert w.properties()["data_loss_lost"] == 5


# ---- Phase 1 stops a deployment rolling in a thread of this process ------------------------


def test_phase_1_stops_an_ongoing_deployment_its_process_and_its_new_containers(
    tmp_path: Path,
) -> None:
    ctx = context(tmp_path)
    stack: FakeStack = ctx.stack  # type: ignore[assignment]
    old = FakeContainer("old", stack.removed)
    stack.existing["backend-wsgi"] = [old]
    state = stack.workspace.state_dir
    lock = DeploymentLock(state / "deployment.lock")
    token = "tok-" + str(time.time_ns())
    record = DeploymentRecord.of_this_process(
        token, "hybrid", "rbd-test", {"backend-wsgi": ["old"]}
    )
    ended: list[str] = []
    started = threading.Event()

    def deployment() -> None:  # what deploy.py does, with `sleep` standing in for compose
        with lock.held("deployment of hybrid", token=token, release="hybrid"):
            record.save(record_path(state))
            stack.existing["backend-wsgi"].append(FakeContainer("new", stack.removed))
            started.set()
            res = run_command(["sleep", "60"], env={TOKEN_ENV: token}, own_session=True)
            status = "stopped" if stop_request(state, token) else "finished"
            ended.append(f"{status} rc={res.returncode}")
            record.finish(record_path(state), status)

    thread = threading.Thread(target=deployment)
    thread.start()
    assert started.wait(10)
    assert _wait(lambda: token_processes(token)), "the deployment's child never started"
    assert running_deployment(stack) is not None  # type: ignore[arg-type]
    run = PhaseRun(ctx, 1)
    t0 = time.monotonic()
    take_lock(run)
    took = time.monotonic() - t0
    thread.join(10)
    assert not thread.is_alive() and ended and ended[0].startswith("stopped")
    assert token_processes(token) == {}
    assert stack.removed == ["new"]  # the old container is left alone
    assert lock.holder().holder == "test rollback"  # type: ignore[union-attr]
    assert [s.name for s in run.result.steps] == ["stop_deployment", "lock"]
    assert any("sleep 60" in s and "c-new" in s for s in ctx.stopped), ctx.stopped
    assert took < 10


def _wait(cond: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    return cond()


DEPLOYMENT_PROCESS = """
import sys, time
from pathlib import Path
from rollback_drill.compose import run_command
from rollback_drill.deployments import TOKEN_ENV, DeploymentRecord, record_path, stop_request
from rollback_drill.lock import DeploymentLock

state, token = Path(sys.argv[1]), sys.argv[2]
lock = DeploymentLock(state / "deployment.lock")
with lock.held("deployment of hybrid", token=token, release="hybrid"):
    record = DeploymentRecord.of_this_process(token, "hybrid", "rbd-test", {"backend-wsgi": []})
    record.save(record_path(state))
    run_command(["sleep", "60"], env={TOKEN_ENV: token}, own_session=True)
    record.finish(record_path(state), "stopped" if stop_request(state, token) else "finished")
"""


def test_phase_1_stops_a_deployment_run_by_another_process(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    stack: FakeStack = ctx.stack  # type: ignore[assignment]
    state = stack.workspace.state_dir
    state.mkdir(parents=True)
    token = "proc-" + str(time.time_ns())
    proc = subprocess.Popen([sys.executable, "-c", DEPLOYMENT_PROCESS, str(state), token])
    try:
        assert _wait(lambda: token_processes(token), timeout=20), "the deployment never started"
        assert _wait(lambda: running_deployment(stack), timeout=10)  # type: ignore[arg-type]
        run = PhaseRun(ctx, 1)
        take_lock(run)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    record = DeploymentRecord.load(record_path(state))
    assert record is not None and record.status == "stopped" and record.pid == proc.pid
    assert token_processes(token) == {}
    assert DeploymentLock(state / "deployment.lock").holder().holder == "test rollback"  # type: ignore[union-attr]
    assert any("1 compose process(es) signalled" in s and "sleep 60" in s for s in ctx.stopped)
