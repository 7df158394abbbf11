"""The pause cycle aimed at a P95 multiple (drills/_levels.aim_pause_cycle) against a fake stack
whose CRUD P95 is a function of the pause: where it stops, how it steps, when it gives up; and
the wait for a deployed release's P95 to settle before any aim."""

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


class FakeCycle:
    def __init__(self, pause_ms: float) -> None:
        self.pause_ms = pause_ms
        self.share = _levels.PAUSE_SHARE
        self.live_at = 100.0
        self.set: list[float] = []

    @property
    def period_ms(self) -> float:
        return self.pause_ms / self.share

    def set_pause(self, pause_ms: float) -> float:
        self.pause_ms = pause_ms
        self.set.append(pause_ms)
        return 100.0 + len(self.set)

    def frozen_share(self) -> float:
        return self.share


def fake_run(fault: FakeCycle, p95_of: Callable[[float], float]) -> Any:
    value = SimpleNamespace(usable=True, value=BASE)
    return SimpleNamespace(
        policy=load_policy().scaled(10),
        baseline=SimpleNamespace(get=lambda baseline_id, scope: value),
        source=SimpleNamespace(read=lambda m, s, w, now: Reading(p95_of(fault.pause_ms), 100)),
        mark=lambda *a, **k: 0.0,
    )


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_levels, "sleep_until", lambda wall: None)


def aim(
    fault: FakeCycle, p95_of: Callable[[float], float], aimed: float, fires_at: float = 2.0
) -> tuple[float, dict[str, Any]]:
    props: dict[str, Any] = {}
    origin = _levels.aim_pause_cycle(
        fake_run(fault, p95_of),
        fault,  # type: ignore[arg-type]
        aimed,
        fires_at=fires_at,
        category="crud",
        record_property=props.__setitem__,
    )
    return origin, props


def stall(pause_ms: float) -> float:
    """What the estimate assumes, plus a drain: the P95 ~3/4 into the pause, +10 %."""
    return BASE + 1.1 * (1 - 0.05 / _levels.PAUSE_SHARE) * pause_ms / 1000


def test_the_first_pause_approaches_the_aim_from_below() -> None:
    first = _levels.first_pause_ms(fake_run(FakeCycle(1.0), stall), 2.5, "crud")
    assert first == pytest.approx(_levels.PAUSE_APPROACH * 1.5 * BASE * 1000 / 0.75)
    assert stall(first) / BASE < 2.0  # under the rollback threshold: no decision before the aim


def test_steps_the_pause_until_the_aim_holds_twice_and_returns_when_it_went_live() -> None:
    fault = FakeCycle(_levels.first_pause_ms(fake_run(FakeCycle(1.0), stall), 2.5, "crud"))
    origin, props = aim(fault, stall, 2.5)
    tolerance = load_policy().drills.level_tolerance.p95_relative * 2.5 / 2
    assert abs(stall(fault.pause_ms) / BASE - 2.5) <= tolerance
    assert origin == 100.0 + len(fault.set)  # the last pause set
    levels = [lvl for _, lvl in props["pause_steps"]]
    assert levels[-2:] == [round(stall(fault.pause_ms) / BASE, 3)] * 2
    assert len(levels) <= 4  # proportional steps on a straight line: one correction
    assert props["pause_ms"] == round(fault.pause_ms, 1) and props["frozen_share"] == 0.2


def test_overshoot_shortens_the_pause_at_most_by_half_per_window() -> None:
    levels = itertools.chain([9.0, 4.0, 2.6, 2.5], itertools.repeat(2.5))
    fault = FakeCycle(100.0)
    origin, props = aim(fault, lambda p: BASE * next(levels), 2.5)
    assert fault.set[0] == 50.0  # 9x wanted 1.5/8 of the rise: halved, not cut to 19 %
    assert [lvl for _, lvl in props["pause_steps"]] == [9.0, 4.0, 2.6, 2.5]
    assert origin == 100.0  # the first pause already read past the 2x threshold


def test_gives_up_past_the_longest_pause_with_the_steps_in_the_error() -> None:
    fault = FakeCycle(400.0)
    with pytest.raises(FaultError, match=r"did not put the crud P95 at 2\.5x.*pass 1000 ms"):
        aim(fault, lambda p: BASE, 2.5)
    assert max(fault.set) <= _levels.PAUSE_MAX_MS


def test_gives_up_after_its_windows_when_the_level_never_holds() -> None:
    levels = itertools.cycle([1.5, 3.5])
    fault = FakeCycle(20.0)
    with pytest.raises(FaultError, match=f"{_levels.AIM_WINDOWS} windows read"):
        aim(fault, lambda p: BASE * next(levels), 2.5)


def test_waits_for_the_deployed_release_to_settle_before_aiming() -> None:
    levels = iter([3.6, 2.1, 1.2])
    run = fake_run(FakeCycle(1.0), lambda p: BASE * next(levels))
    _levels.wait_p95_settled(run, "crud")
    assert next(levels, None) is None  # read until 1.2x, under the degradation rule's 1.5x


def test_a_release_that_never_settles_is_a_fault_error() -> None:
    run = fake_run(FakeCycle(1.0), lambda p: BASE * 3.0)
    with pytest.raises(FaultError, match=r"stayed at 3\.00x"):
        _levels.wait_p95_settled(run, "crud", timeout_s=0.0)


def test_the_origin_is_the_first_pause_past_the_threshold_when_a_step_overshot() -> None:
    levels = itertools.chain([1.3, 3.3, 2.6], itertools.repeat(2.6))
    fault = FakeCycle(33.0)
    props: dict[str, Any] = {}
    origin = _levels.aim_pause_cycle(
        fake_run(fault, lambda p: BASE * next(levels)),
        fault,  # type: ignore[arg-type]
        2.5,
        fires_at=2.0,
        category="crud",
        record_property=props.__setitem__,
    )
    assert origin == 101.0  # the 3.3x pause, not the 2.6x one that held (102.0)
    assert "first pause past the threshold" in props["origin"]


def test_near_the_aim_the_step_is_halved_geometrically() -> None:
    levels = itertools.chain([2.9, 2.5], itertools.repeat(2.5))
    fault = FakeCycle(40.0)
    aim(fault, lambda p: BASE * next(levels), 2.5)
    assert fault.set == [pytest.approx(40.0 * (1.5 / 1.9) ** 0.5)]  # not 40 x 1.5/1.9
