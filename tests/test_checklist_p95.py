"""The checklist's "P95 latency back to baseline" and the quantile interval behind it (no
Docker: synthetic records in a RecordStore)."""

from __future__ import annotations

import random

import pytest

from checks.checklist import CHECKLIST, p95_back_to_baseline
from rollback_drill.baseline import Baseline
from rollback_drill.metrics import Scope, ScopeKind
from rollback_drill.policy import load_policy
from rollback_drill.records import (
    Outcome,
    RecordStore,
    RequestRecord,
    quantile_interval,
    weighted_quantile,
)

T0 = 1_700_000_000.0
CRUD = Scope(ScopeKind.CATEGORY, "crud")


def test_interval_brackets_the_quantile_and_narrows_with_samples() -> None:
    uniform = [(ms / 1000, 1) for ms in range(1, 1001)]
    low, high = quantile_interval(uniform, 0.95)
    # n = 1000: ranks 950 -/+ 1.645 * sqrt(1000 * 0.95 * 0.05) = 950 -/+ 11.3
    assert (low, high) == (pytest.approx(0.939), pytest.approx(0.962))
    assert low < weighted_quantile(uniform, 0.95) < high
    tenfold = [(v, 10) for v, _ in uniform]
    low10, high10 = quantile_interval(tenfold, 0.95)
    assert low < low10 < high10 < high


def test_interval_of_an_empty_sample_is_an_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        quantile_interval([], 0.95)


def test_interval_covers_the_true_quantile_about_as_often_as_it_says() -> None:
    """Coverage over 400 samples of 250 draws from an exponential: ~90 %."""
    rng = random.Random(7)
    true_p95 = -0.01 * __import__("math").log(0.05)  # exponential, mean 10 ms
    covered = 0
    for _ in range(400):
        sample = [(round(rng.expovariate(100.0), 5), 1) for _ in range(250)]
        low, high = quantile_interval(sample, 0.95)
        covered += low <= true_p95 <= high
    assert 0.84 <= covered / 400 <= 0.96


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
    store = _store([(T0, T0 + 12, 0.006), (T0 + 100, T0 + 110, 0.006)])
    result = _check(store, _p95(store, T0, T0 + 12), (T0 + 100, T0 + 110), window)
    assert result.passed, result.line()
    assert "90 % intervals" in result.detail


@pytest.mark.parametrize("window", [True, False])
def test_a_stack_still_2_5x_slower_fails_with_its_evidence(window: bool) -> None:
    store = _store([(T0, T0 + 12, 0.006), (T0 + 100, T0 + 110, 0.015)])
    result = _check(store, _p95(store, T0, T0 + 12), (T0 + 100, T0 + 110), window)
    assert not result.passed
    assert result.measured == pytest.approx(_p95(store, T0 + 100, T0 + 110), abs=1e-4)
    assert "fails when" in result.detail and "P95" in result.line()


def test_a_p95_over_too_few_requests_is_no_evidence() -> None:
    store = _store([(T0, T0 + 12, 0.006), (T0 + 100, T0 + 102, 0.006)])  # 50 requests
    result = _check(store, _p95(store, T0, T0 + 12), (T0 + 100, T0 + 102), True)
    assert not result.passed
    assert f">= {CHECKLIST.min_p95_requests} crud requests" in result.expected
