from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from rollback_drill.errors import DrillError, LockHeld
from rollback_drill.lock import DeploymentLock


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
