"""The checklist's "P95 latency back to baseline" and the P95 interval behind it (no Docker:
synthetic records in a RecordStore)."""

from __future__ import annotations

import math
import random

import pytest

from rollback_drill.baseline import Baseline
from rollback_drill.checks.checklist import await_p95_back_to_baseline, p95_back_to_baseline
from rollback_drill.metrics import Scope, ScopeKind
from rollback_drill.policy import load_policy
from rollback_drill.records import Outcome, RecordStore, RequestRecord

T0 = 1_700_000_000.0
CRUD = Scope(ScopeKind.CATEGORY, "crud")


def _uniform(store: RecordStore, copies: int) -> None:
    """Latencies 1..1000 ms, ``copies`` of each, all completing in one second."""
    for ms in range(1, 1001):
        for _ in range(copies):
            lat = ms / 1000
            store.append(RequestRecord("crud", T0 - lat, T0 - lat, T0 + 0.5, lat, Outcome.OK, 200))


def test_p95_interval_brackets_the_p95_and_narrows_with_samples() -> None:
    store, more = RecordStore(), RecordStore()
    _uniform(store, 1)
    _uniform(more, 10)
    st, st10 = store.window("crud", T0, T0 + 1), more.window("crud", T0, T0 + 1)
    # n = 1000: ranks 950 -/+ 1.2816 * sqrt(1000 * 0.95 * 0.05) = 950 -/+ 8.8
    assert (st.p95_low_s, st.p95_high_s) == (
        pytest.approx(0.941, abs=0.0015),
        pytest.approx(0.959, abs=0.0015),
    )
    assert st.p95_low_s < st.p95_s < st.p95_high_s
    assert st.p95_low_s < st10.p95_low_s < st10.p95_high_s < st.p95_high_s


def test_p95_interval_covers_the_true_p95_about_as_often_as_it_says() -> None:
    """Coverage over 400 samples of 250 draws from an exponential (mean 10 ms): ~80 %."""
    rng = random.Random(7)
    true_p95 = -0.01 * math.log(0.05)
    covered = 0
    for i in range(400):
        store = RecordStore()
        for _ in range(250):
            lat = rng.expovariate(100.0)
            store.append(RequestRecord("crud", T0, T0, T0 + 0.5, lat, Outcome.OK, 200))
        st = store.window("crud", T0, T0 + 1)
        assert st.p95_low_s is not None and st.p95_high_s is not None, i
        covered += st.p95_low_s <= true_p95 <= st.p95_high_s
    assert 0.74 <= covered / 400 <= 0.86


def _store(spans: list[tuple[float, float, float]], seed: int = 3) -> RecordStore:
    """CRUD records at 25/s in each (start, end, mean latency) span; exponential latencies."""
    rng = random.Random(seed)
    store = RecordStore()
    for start, end, mean in spans:
        t = start
        while t < end:
            lat = rng.expovariate(1 / mean)
            store.append(RequestRecord("crud", t - lat, t - lat, t, lat, Outcome.OK, 200))
            t += 0.04
    return store


def _check(store: RecordStore, base_value: float, post: tuple[float, float], window: bool):
    policy = load_policy()
    baseline = Baseline.from_mapping(policy, {("p95_pre_hybrid", CRUD): base_value})
    return p95_back_to_baseline(
        store,
        policy,
        baseline,
        post[0],
        post[1],
        baseline_window=(T0, T0 + 12) if window else None,
    )


def _p95(store: RecordStore, start: float, end: float) -> float:
    p95 = store.window("crud", start, end).p95_s
    assert p95 is not None
    return p95


@pytest.mark.parametrize("window", [True, False])
def test_a_stack_as_fast_as_its_baseline_passes(window: bool) -> None:
    store = _store([(T0, T0 + 12, 0.006), (T0 + 100, T0 + 130, 0.006)])
    result = _check(store, _p95(store, T0, T0 + 12), (T0 + 100, T0 + 130), window)
    assert result.passed, result.line()
    assert "(80 % interval) by part" in result.detail


@pytest.mark.parametrize("window", [True, False])
def test_a_stack_still_2_5x_slower_fails_with_its_evidence(window: bool) -> None:
    store = _store([(T0, T0 + 12, 0.006), (T0 + 100, T0 + 130, 0.015)])
    result = _check(store, _p95(store, T0, T0 + 12), (T0 + 100, T0 + 130), window)
    assert not result.passed
    assert result.measured == pytest.approx(_p95(store, T0 + 100, T0 + 130), abs=1e-4)
    assert "fails when" in result.detail and "P95" in result.line()


def test_a_p95_over_too_few_requests_is_no_evidence() -> None:
    store = _store([(T0, T0 + 12, 0.006), (T0 + 100, T0 + 102, 0.006)])  # 50 requests
    result = _check(store, _p95(store, T0, T0 + 12), (T0 + 100, T0 + 102), True)
    assert not result.passed
    assert result.detail.count("(too few)") == load_policy().checklist.p95.parts


def test_one_stalled_part_of_three_passes_and_two_fail() -> None:
    """A host stall in one third of the period is not the release; in two thirds it is."""
    healthy, slow = 0.006, 0.015
    one = _store(
        [(T0, T0 + 12, healthy), (T0 + 100, T0 + 110, slow), (T0 + 110, T0 + 130, healthy)]
    )
    two = _store(
        [(T0, T0 + 12, healthy), (T0 + 100, T0 + 120, slow), (T0 + 120, T0 + 130, healthy)]
    )
    passed = _check(one, _p95(one, T0, T0 + 12), (T0 + 100, T0 + 130), True)
    failed = _check(two, _p95(two, T0, T0 + 12), (T0 + 100, T0 + 130), True)
    assert passed.passed and "1 of 3 failed" in passed.detail, passed.line()
    assert not failed.passed and "2 of 3 failed" in failed.detail, failed.line()
    # the whole period's P95 is reported, whatever the parts decided
    assert passed.measured == pytest.approx(_p95(one, T0 + 100, T0 + 130), abs=1e-4)


class _Clock:
    """A clock that moves only when slept on (the records are all there already)."""

    def __init__(self, at: float) -> None:
        self.at, self.slept = at, []

    def now(self) -> float:
        return self.at

    def sleep(self, s: float) -> None:
        self.slept.append(round(s, 6))
        self.at += s


def _await(store: RecordStore, post: tuple[float, float]):
    policy = load_policy()
    base = _p95(store, T0, T0 + 12)
    baseline = Baseline.from_mapping(policy, {("p95_pre_hybrid", CRUD): base})
    clock = _Clock(post[1])
    result = await_p95_back_to_baseline(
        store,
        policy,
        baseline,
        post[0],
        post[1],
        baseline_window=(T0, T0 + 12),
        sleep=clock.sleep,
        now=clock.now,
    )
    return result, clock


def test_a_stack_back_at_once_is_judged_once_without_waiting() -> None:
    store = _store([(T0, T0 + 12, 0.006), (T0 + 100, T0 + 160, 0.006)])
    result, clock = _await(store, (T0 + 100, T0 + 130))
    assert result.passed and clock.slept == [] and "more_parts" not in result.data


def test_a_stretch_of_host_load_ends_and_the_latest_parts_pass_with_the_first_kept() -> None:
    """Two of three parts slow, then healthy: one more part observed, the latest three judged."""
    store = _store([(T0, T0 + 12, 0.006), (T0 + 100, T0 + 120, 0.015), (T0 + 120, T0 + 170, 0.006)])
    result, clock = _await(store, (T0 + 100, T0 + 130))
    assert result.passed, result.line()
    assert clock.slept == [10.0] and result.data["more_parts"] == 1
    assert "failed from +0 s" in result.detail and "2 of 3 failed" in result.detail
    assert "judged from +10 s" in result.detail
    assert "latest 3 of up to 6" in result.expected


def test_a_release_still_slow_fails_after_every_more_part() -> None:
    store = _store([(T0, T0 + 12, 0.006), (T0 + 100, T0 + 170, 0.015)])
    result, clock = _await(store, (T0 + 100, T0 + 130))
    more = load_policy().checklist.p95.more_parts
    assert more >= 1 and not result.passed
    assert clock.slept == [10.0] * more and result.data["more_parts"] == more
    assert result.detail.count("failed from") == more
