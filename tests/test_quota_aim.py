"""The CPU quota aimed at a P95 multiple (drills/_levels.aim_cpu_quota) against a fake stack
whose CRUD P95 is a function of the quota: where it stops, when it loosens, when it gives up."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from rollback_drill.decisions import Reading
from rollback_drill.drills import _levels
from rollback_drill.errors import FaultError
from rollback_drill.policy import load_policy

BASE = 0.040  # s: the settled CRUD baseline P95


class FakeQuota:
    def __init__(self, cpus: float) -> None:
        self.cpus = cpus
        self.live_at = 100.0
        self.set: list[float] = []

    def set_cpus(self, cpus: float) -> float:
        self.cpus = cpus
        self.set.append(cpus)
        return 100.0 + len(self.set)


def fake_run(fault: FakeQuota, p95_of: Callable[[float], float]) -> Any:
    value = SimpleNamespace(usable=True, value=BASE)
    return SimpleNamespace(
        policy=load_policy().scaled(10),
        baseline=SimpleNamespace(get=lambda baseline_id, scope: value),
        source=SimpleNamespace(read=lambda m, s, w, now: Reading(p95_of(fault.cpus), 100)),
        mark=lambda *a, **k: 0.0,
    )


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_levels, "sleep_until", lambda wall: None)


def aim(
    fault: FakeQuota, p95_of: Callable[[float], float], aimed: float, below: float | None
) -> tuple[float, dict[str, Any]]:
    props: dict[str, Any] = {}
    origin = _levels.aim_cpu_quota(
        fake_run(fault, p95_of),
        fault,  # type: ignore[arg-type]
        aimed,
        below=below,
        category="crud",
        record_property=props.__setitem__,
    )
    return origin, props


def cliff(cpus: float) -> float:
    """The example stack's shape, 0.33 CPUs in use: 1x at 2x the use, 5x at 1.6x."""
    used = 0.33
    return BASE * max(1.0, 1.0 + 40 * (2.0 - cpus / used) ** 2)


def test_steps_down_until_the_aim_holds_twice_and_returns_when_that_quota_went_live() -> None:
    fault = FakeQuota(0.66)
    origin, props = aim(fault, cliff, 2.5, None)
    assert cliff(fault.cpus) / BASE >= 2.5
    assert origin == 100.0 + len(fault.set)  # the last quota set
    assert [lvl for _, lvl in props["quota_steps"][-2:]] == [round(cliff(fault.cpus) / BASE, 3)] * 2
    assert props["quota_cpus"] == round(fault.cpus, 4)


def test_a_twin_loosens_a_quota_past_the_ceiling_and_settles_in_the_band() -> None:
    levels = itertools.chain([1.0, 1.2, 2.4, 1.7, 1.7], itertools.repeat(1.7))
    fault = FakeQuota(0.66)
    origin, props = aim(fault, lambda cpus: BASE * next(levels), 1.6, 2.0)
    steps = props["quota_steps"]
    assert [lvl for _, lvl in steps] == [1.0, 1.2, 2.4, 1.7, 1.7]
    assert fault.set[2] > fault.set[1]  # loosened after 2.4x
    assert origin == 103.0


def test_gives_up_at_the_floor_with_the_steps_in_the_error() -> None:
    fault = FakeQuota(0.66)
    with pytest.raises(FaultError, match=r"did not put the crud P95 at 2\.5x"):
        aim(fault, lambda cpus: BASE, 2.5, None)
    assert min(fault.set) >= 0.66 * _levels.QUOTA_FLOOR / _levels.QUOTA_START


def test_waits_for_the_deployed_release_to_settle_before_aiming() -> None:
    levels = iter([3.6, 2.1, 1.2])
    fault = FakeQuota(0.66)
    run = fake_run(fault, lambda cpus: BASE * next(levels))
    _levels.wait_p95_settled(run, "crud")
    assert next(levels, None) is None  # read until 1.2x, under the degradation rule's 1.5x


def test_a_release_that_never_settles_is_a_fault_error() -> None:
    run = fake_run(FakeQuota(0.66), lambda cpus: BASE * 3.0)
    with pytest.raises(FaultError, match=r"stayed at 3\.00x"):
        _levels.wait_p95_settled(run, "crud", timeout_s=0.0)
