from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from rollback_drill.errors import DrillError, LockHeld
from rollback_drill.lock import DeploymentLock, LockInfo, process_start


def test_acquire_records_the_holder_and_release_frees(tmp_path: Path) -> None:
    lock = DeploymentLock(tmp_path / "deployment.lock")
    info = lock.acquire("rollback drill A")
    assert lock.is_held
    data = json.loads(lock.path.read_text())
    assert data["holder"] == "rollback drill A" and data["pid"] == os.getpid()
    held = lock.holder()
    assert held is not None and held.holder == "rollback drill A" and held.since == info.since
    lock.release(info)
    assert not lock.is_held and lock.holder() is None


def test_second_holder_is_refused_with_one_line_naming_the_first(tmp_path: Path) -> None:
    lock = DeploymentLock(tmp_path / "deployment.lock")
    lock.acquire("rollback drill A")
    with pytest.raises(LockHeld) as err:
        DeploymentLock(lock.path).acquire("deployment of hybrid")
    message = str(err.value)
    assert "held by rollback drill A" in message and "\n" not in message
    assert isinstance(err.value, DrillError)
    assert lock.holder() is not None and lock.holder().holder == "rollback drill A"  # type: ignore[union-attr]


def test_only_one_of_many_concurrent_acquirers_wins(tmp_path: Path) -> None:
    path = tmp_path / "deployment.lock"
    start = threading.Barrier(16)
    winners: list[str] = []
    refused: list[str] = []

    def contend(n: int) -> None:
        start.wait()
        try:
            DeploymentLock(path).acquire(f"drill {n}")
            winners.append(f"drill {n}")
        except LockHeld:
            refused.append(f"drill {n}")

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1 and len(refused) == 15
    holder = DeploymentLock(path).holder()
    assert holder is not None and holder.holder == winners[0]
    assert [p.name for p in tmp_path.iterdir()] == ["deployment.lock"]  # no temp file left


def test_held_context_releases_after_an_exception(tmp_path: Path) -> None:
    lock = DeploymentLock(tmp_path / "deployment.lock")
    with pytest.raises(RuntimeError), lock.held("deploy"):
        assert lock.is_held
        raise RuntimeError("boom")
    assert not lock.is_held


def test_release_leaves_a_lock_someone_else_took(tmp_path: Path) -> None:
    lock = DeploymentLock(tmp_path / "deployment.lock")
    mine = lock.acquire("first")
    assert lock.force_release() is not None
    lock.acquire("second")
    with pytest.raises(LockHeld, match="now held by second"):
        lock.release(mine)
    assert lock.holder().holder == "second"  # type: ignore[union-attr]


def test_unreadable_lock_file_still_counts_as_held(tmp_path: Path) -> None:
    lock = DeploymentLock(tmp_path / "deployment.lock")
    lock.path.write_text("not json")
    with pytest.raises(LockHeld, match="unknown holder"):
        lock.acquire("drill")


# ---- Phase 1's take-over: a holder whose process is gone, a deployment it stopped ----------


def test_the_lock_names_the_holders_process_and_a_deployments_token(tmp_path: Path) -> None:
    lock = DeploymentLock(tmp_path / "deployment.lock")
    info = lock.acquire("deployment of hybrid", token="t0k", release="hybrid")
    held = lock.holder()
    assert held is not None and held.token == "t0k" and held.release == "hybrid"
    assert held.is_deployment and held.started == process_start(os.getpid()) != ""
    assert held.alive() is True and held.same_holder(info)


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid  # reaped: no process has it (until reused; then its start differs)


def _write(lock: DeploymentLock, **fields: object) -> LockInfo:
    info = LockInfo(
        **{"holder": "x", "pid": 1, "host": socket.gethostname(), "since": 1.0, **fields}
    )  # type: ignore[arg-type]
    lock.path.write_text(json.dumps(dataclasses.asdict(info)))
    return info


def test_a_holder_whose_process_is_gone_is_not_alive(tmp_path: Path) -> None:
    lock = DeploymentLock(tmp_path / "deployment.lock")
    gone = _write(lock, holder="crashed deployment", pid=_dead_pid(), started="123")
    assert lock.holder().alive() is False  # type: ignore[union-attr]
    # a reused pid is another process: its start time differs from the lock's
    reused = _write(lock, holder="old", pid=os.getpid(), started="1")
    assert lock.holder().alive() is False and reused.pid == os.getpid()  # type: ignore[union-attr]
    # another host: cannot be told from here
    _write(lock, holder="elsewhere", pid=os.getpid(), host="another-host")
    assert lock.holder().alive() is None  # type: ignore[union-attr]
    assert gone.holder == "crashed deployment"


def test_take_over_replaces_the_holder_it_names_and_nobody_else(tmp_path: Path) -> None:
    lock = DeploymentLock(tmp_path / "deployment.lock")
    stale = _write(lock, holder="crashed deployment", pid=_dead_pid(), started="123")
    mine = lock.take_over("rollback", stale)
    assert lock.holder().same_holder(mine) and mine.holder == "rollback"  # type: ignore[union-attr]
    # the lock names someone else by now: refused, nothing changed
    with pytest.raises(LockHeld, match="now held by rollback"):
        lock.take_over("second rollback", stale)
    assert lock.holder().same_holder(mine)  # type: ignore[union-attr]


def test_only_one_of_many_concurrent_take_overs_wins(tmp_path: Path) -> None:
    path = tmp_path / "deployment.lock"
    stale = _write(DeploymentLock(path), holder="crashed", pid=_dead_pid(), started="9")
    start = threading.Barrier(12)
    winners: list[str] = []

    def contend(n: int) -> None:
        start.wait()
        try:
            DeploymentLock(path).take_over(f"rollback {n}", stale)
            winners.append(f"rollback {n}")
        except LockHeld:
            pass

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1 and DeploymentLock(path).holder().holder == winners[0]  # type: ignore[union-attr]


def test_held_leaves_a_lock_a_rollback_took_over(tmp_path: Path) -> None:
    lock = DeploymentLock(tmp_path / "deployment.lock")
    with lock.held("deployment of hybrid", token="t") as info:
        taken = lock.take_over("rollback", info)  # Phase 1 stopped this deployment
    assert lock.holder().same_holder(taken)  # type: ignore[union-attr]
