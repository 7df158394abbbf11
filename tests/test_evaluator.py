"""Tests of the evaluator: synthetic and replayed series through the default policy."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import pytest

from rollback_drill.baseline import Baseline
from rollback_drill.decisions import Decision, DecisionKind, Reading
from rollback_drill.evaluator import Evaluator
from rollback_drill.metrics import Metric, Scope
from rollback_drill.policy import Action, Comparison, Policy, Rule, load_policy

GLOBAL = Scope.everywhere()
CRUD = Scope.category("crud")
STREAMING = Scope.category("streaming")
ASGI = Scope.service("asgi")
P95_BASE = 0.120  # seconds, the healthy pre-hybrid P95 of every category
CACHE_BASE = 0.9
SUSTAIN = 30  # the P95 rules hold this long (s) before they decide (policy.yaml sustained_s)

# Well inside every threshold: what a healthy stack reads.
HEALTHY: dict[Metric, float] = {
    Metric.ERROR_RATE: 0.001,
    Metric.DB_CONNECTION_FAILURE_RATE: 0.0,
    Metric.INTEGRITY_VIOLATIONS: 0,
    Metric.SECURITY_FINDINGS: 0,
    Metric.P95_LATENCY: P95_BASE,
    Metric.CONTAINER_RESTARTS: 0,
    Metric.MEMORY_USAGE_RATIO: 0.4,
    Metric.AUTH_FAILURE_RATE: 0.0,
    Metric.REDIS_CONNECTION_FAILURES: 0,
    Metric.WEBSOCKET_DISCONNECT_RATE: 0.02,
    Metric.CACHE_HIT_RATE: CACHE_BASE,
    Metric.SUPPORT_TICKETS: 1,
}

Value = float | None | Callable[[float], float | None]


@dataclass
class FakeSource:
    """Healthy everywhere unless told otherwise; records every read."""

    samples: int = 1000
    values: dict[tuple[str, Scope], Value] = field(default_factory=dict)
    sample_counts: dict[tuple[str, Scope], int] = field(default_factory=dict)
    reads: list[tuple[str, Scope, float, float]] = field(default_factory=list)

    def set(self, metric: str, scope: Scope, value: Value, samples: int | None = None) -> None:
        self.values[(metric, scope)] = value
        if samples is not None:
            self.sample_counts[(metric, scope)] = samples

    def read(self, metric: str, scope: Scope, window_s: float, now: float) -> Reading:
        self.reads.append((metric, scope, window_s, now))
        key = (metric, scope)
        value = self.values.get(key, HEALTHY[Metric(metric)])
        if callable(value):
            value = value(now)
        return Reading(value, self.sample_counts.get(key, self.samples))


@dataclass
class Replay:
    """A recorded series: the value at ``now`` is the last point at or before it."""

    points: Sequence[tuple[float, float]]

    def __call__(self, now: float) -> float | None:
        seen = [v for t, v in self.points if t <= now]
        return seen[-1] if seen else None


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


def _baseline(policy: Policy) -> Baseline:
    return Baseline.capture(policy, FakeSource(), now=0.0)


def _run(ev: Evaluator, source: FakeSource, times: Iterable[float]) -> list[Decision]:
    out: list[Decision] = []
    for t in times:
        out += ev.tick(t, source)
    return out


def _of(decisions: list[Decision], rule_id: str) -> list[Decision]:
    return [d for d in decisions if d.trigger_id == rule_id]


def _wobbling(healthy: float) -> Callable[[float], float]:
    return lambda t: healthy * (1 + 0.05 * math.sin(t))


def test_a_healthy_stack_makes_no_decision_in_two_hours(policy: Policy) -> None:
    source = FakeSource()
    for rule in policy.rules():
        for scope in rule.scopes():
            source.set(rule.metric, scope, _wobbling(HEALTHY[rule.metric]))
    ev = Evaluator(policy, _baseline(policy), deployed_at=0.0)
    assert _run(ev, source, range(0, 7201, 5)) == []
    assert not any(d.is_rollback() for d in _run(ev, source, range(7205, 9000, 5)))


# --- at, just above, just below every threshold --------------------------------------


def _threshold_cases(policy: Policy) -> list[tuple[str, Scope]]:
    """Every (rule, scope) with a single threshold; bands have their own test."""
    rules = [r for r in policy.rules() if r.condition.comparison is not Comparison.BETWEEN]
    return [(r.id, s) for r in rules for s in r.scopes()]


def _effective(rule: Rule) -> float:
    c = rule.condition
    assert c.threshold is not None
    base = {"p95_pre_hybrid": P95_BASE, "cache_hit_pre_hybrid": CACHE_BASE}
    return c.threshold * (base[c.baseline] if c.baseline else 1.0)


_EXPECTED_KIND = {
    Action.IMMEDIATE_ROLLBACK: DecisionKind.ROLLBACK,
    Action.ROLLBACK_WITHIN: DecisionKind.ROLLBACK,
    Action.EVALUATE: DecisionKind.DEFERRED,
    Action.MONITOR: DecisionKind.MONITOR,
}
# Which of (just below, exactly at, just above) fire: the plan's '>' is strict.
_FIRES = {
    Comparison.GT: (False, False, True),
    Comparison.GE: (False, True, True),
    Comparison.LT: (True, False, False),
}


def _decisions_at(policy: Policy, rule: Rule, scope: Scope, value: float) -> list[Decision]:
    source = FakeSource()
    source.set(rule.metric, scope, value)
    ev = Evaluator(policy, _baseline(policy), deployed_at=0.0)
    sustain = int(rule.sustained_s or 0)
    return _of(_run(ev, source, range(0, sustain + 2)), rule.id)


@pytest.mark.parametrize(("rule_id", "scope"), _threshold_cases(load_policy()), ids=str)
def test_threshold_boundaries(policy: Policy, rule_id: str, scope: Scope) -> None:
    rule = policy.rule(rule_id)
    t = _effective(rule)
    below, above = math.nextafter(t, -math.inf), math.nextafter(t, math.inf)
    for value, fires in zip((below, t, above), _FIRES[rule.condition.comparison], strict=True):
        got = _decisions_at(policy, rule, scope, value)
        assert [d.kind for d in got] == ([_EXPECTED_KIND[rule.action]] if fires else []), value
        if fires:
            assert got[0].threshold == t and got[0].scope == scope and got[0].value == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (math.nextafter(0.01, 0), []),
        (0.01, [("error_rate_monitor", DecisionKind.MONITOR)]),
        (math.nextafter(0.05, 0), [("error_rate_monitor", DecisionKind.MONITOR)]),
        (0.05, [("error_rate_evaluate", DecisionKind.DEFERRED)]),
        (0.10, [("error_rate_evaluate", DecisionKind.DEFERRED)]),
        (math.nextafter(0.10, 1), [("error_rate", DecisionKind.ROLLBACK)]),
    ],
)
def test_band_boundaries(
    policy: Policy, value: float, expected: list[tuple[str, DecisionKind]]
) -> None:
    source = FakeSource()
    source.set(Metric.ERROR_RATE, CRUD, value)
    ev = Evaluator(policy, _baseline(policy), deployed_at=0.0)
    got = ev.tick(0.0, source)
    assert [(d.trigger_id, d.kind) for d in got] == expected


def test_p95_ladder_on_wsgi_and_asgi_categories(policy: Policy) -> None:
    source = FakeSource()
    source.set(Metric.P95_LATENCY, CRUD, 2.0 * P95_BASE)
    source.set(Metric.P95_LATENCY, STREAMING, 3.0 * P95_BASE)
    ev = Evaluator(policy, _baseline(policy), deployed_at=0.0)
    assert _run(ev, source, range(0, SUSTAIN)) == []  # P95 rules hold 30 s first
    got = ev.tick(SUSTAIN, source)
    assert [(d.trigger_id, d.scope, d.kind) for d in got] == [
        ("performance_degradation", CRUD, DecisionKind.DEFERRED),  # exactly 2x: not > 2x
        ("performance_degradation", STREAMING, DecisionKind.DEFERRED),  # no rollback rung
    ]
    source.set(Metric.P95_LATENCY, CRUD, 2.5 * P95_BASE)
    got = _run(ev, source, range(SUSTAIN + 1, 2 * SUSTAIN + 2))
    assert [(d.trigger_id, d.kind, d.escalated_from, d.time) for d in got] == [
        ("wsgi_p95_latency", DecisionKind.ESCALATED, "performance_degradation", 2 * SUSTAIN + 1)
    ]
    assert got[0].baseline == P95_BASE and got[0].threshold == 2.0 * P95_BASE


def test_a_p95_that_crosses_for_less_than_its_sustain_period_decides_nothing(
    policy: Policy,
) -> None:
    """A shared host's P95 crosses 1.5x for seconds at a time: the rule waits 30 s."""
    source = FakeSource()
    source.set(Metric.P95_LATENCY, CRUD, lambda t: (1.8 if t % 40 < SUSTAIN else 1.0) * P95_BASE)
    ev = Evaluator(policy, _baseline(policy), deployed_at=0.0)
    assert _run(ev, source, range(0, 400)) == []
    source.set(Metric.P95_LATENCY, CRUD, 1.8 * P95_BASE)
    got = _run(ev, source, range(400, 400 + SUSTAIN + 1))
    assert [(d.trigger_id, d.kind, d.time) for d in got] == [
        ("performance_degradation", DecisionKind.DEFERRED, 400 + SUSTAIN)
    ]


# --- samples, no data, baselines ------------------------------------------------------


def test_too_few_samples_decide_nothing(policy: Policy) -> None:
    source = FakeSource()
    source.set(Metric.ERROR_RATE, CRUD, 0.9, samples=policy.rule("error_rate").min_samples - 1)
    ev = Evaluator(policy, _baseline(policy), deployed_at=0.0)
    assert _run(ev, source, range(10)) == []
    source.set(Metric.ERROR_RATE, CRUD, 0.9, samples=policy.rule("error_rate").min_samples)
    assert [d.trigger_id for d in ev.tick(10.0, source)] == ["error_rate"]


@pytest.mark.parametrize("value", [None, math.nan])
def test_no_data_decides_nothing(policy: Policy, value: float | None) -> None:
    source = FakeSource()
    for metric in HEALTHY:
        for scope in (GLOBAL, CRUD, ASGI):
            source.set(metric, scope, value)
    ev = Evaluator(policy, _baseline(policy), deployed_at=0.0)
    assert _run(ev, source, range(5)) == []


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        (0.0, "is 0, not above zero: no multiple of it is a threshold"),
        (None, "no data"),
        ("absent", "not given"),
    ],
    ids=["zero", "none", "absent"],
)
def test_unusable_baseline_disables_relative_rules_and_says_so(
    policy: Policy, given: float | str | None, problem: str
) -> None:
    values: dict[tuple[str, Scope], float | None] = {
        ("p95_pre_hybrid", s): P95_BASE for s in policy.rule("performance_degradation").scopes()
    }
    values[("cache_hit_pre_hybrid", GLOBAL)] = CACHE_BASE
    if isinstance(given, str):
        del values[("p95_pre_hybrid", CRUD)]
    else:
        values[("p95_pre_hybrid", CRUD)] = given
    baseline = Baseline.from_mapping(policy, values)
    assert baseline.problems() == (f"baseline 'p95_pre_hybrid' at category:crud: {problem}",)
    source = FakeSource()
    source.set(Metric.P95_LATENCY, CRUD, 100.0)  # would be far past 2x any real baseline
    ev = Evaluator(policy, baseline, deployed_at=0.0)
    first = ev.tick(0.0, source)
    assert [(d.trigger_id, d.kind, d.scope) for d in first] == [
        ("wsgi_p95_latency", DecisionKind.MONITOR, CRUD),
        ("performance_degradation", DecisionKind.MONITOR, CRUD),
    ]
    assert "not evaluated: baseline 'p95_pre_hybrid'" in first[0].message
    assert not any(d.is_rollback() for d in first)
    assert _run(ev, source, range(1, 700, 10)) == []
    source.set(Metric.P95_LATENCY, STREAMING, 100.0)  # other scopes still work
    got = _run(ev, source, range(700, 701 + SUSTAIN))
    assert [d.trigger_id for d in got] == ["performance_degradation"]


def test_baseline_capture_reads_scaled_windows_and_checks_samples(policy: Policy) -> None:
    quick = policy.scaled(4)
    source = FakeSource()
    source.set(Metric.CACHE_HIT_RATE, GLOBAL, 0.8, samples=3)
    baseline = Baseline.capture(quick, source, now=50.0)
    assert {(m, w, n) for m, _, w, n in source.reads} == {
        ("p95_latency", 30.0, 50.0),
        ("cache_hit_rate", 30.0, 50.0),
    }
    assert baseline.problems() == (
        "baseline 'cache_hit_pre_hybrid' at global: too few samples (3 < 50)",
    )
    crud = baseline.get("p95_pre_hybrid", CRUD)
    assert crud is not None and crud.usable and crud.value == P95_BASE


def test_baseline_mapping_with_an_unknown_id_is_refused(policy: Policy) -> None:
    with pytest.raises(ValueError, match="no baseline 'p95'"):
        Baseline.from_mapping(policy, {("p95", CRUD): 0.1})


# --- deferred verdicts ----------------------------------------------------------------


def test_deferred_verdict_escalates_at_its_deadline(policy: Policy) -> None:
    source = FakeSource()
    source.set(Metric.ERROR_RATE, CRUD, 0.07)
    ev = Evaluator(policy, _baseline(policy), deployed_at=0.0)
    (deferred,) = ev.tick(0.0, source)
    assert (deferred.kind, deferred.deadline, deferred.is_rollback()) == (
        DecisionKind.DEFERRED,
        300.0,
        False,
    )
    assert deferred.band == (0.05, 0.10) and deferred.threshold is None
    assert _run(ev, source, range(1, 300)) == []
    (escalated,) = ev.tick(300.0, source)
    assert (escalated.kind, escalated.trigger_id) == (DecisionKind.ESCALATED, "error_rate_evaluate")
    assert escalated.is_rollback()
    assert _run(ev, source, range(301, 400)) == []  # once per episode


def test_deferred_verdict_clears(policy: Policy) -> None:
    source = FakeSource()
    source.set(Metric.ERROR_RATE, CRUD, Replay([(0, 0.07), (100, 0.02), (200, 0.0)]))
    ev = Evaluator(policy, _baseline(policy), deployed_at=0.0)
    got = _run(ev, source, range(0, 400))
    assert [(d.time, d.trigger_id, d.kind) for d in got] == [
        (0, "error_rate_evaluate", DecisionKind.DEFERRED),
        (100, "error_rate_evaluate", DecisionKind.CLEARED),
        (100, "error_rate_monitor", DecisionKind.MONITOR),
    ]
    assert not any(d.is_rollback() for d in got)


def test_deferred_verdict_escalates_early_when_worsening(policy: Policy) -> None:
    source = FakeSource()
    series = Replay([(0, 0.07), (50, 0.12), (60, 0.07), (70, 0.03), (80, 0.0), (90, 0.12)])
    source.set(Metric.ERROR_RATE, CRUD, series)
    ev = Evaluator(policy, _baseline(policy), deployed_at=0.0)
    got = _run(ev, source, range(0, 400))
    assert [(d.time, d.trigger_id, d.kind, d.escalated_from) for d in got] == [
        (0, "error_rate_evaluate", DecisionKind.DEFERRED, None),
        (50, "error_rate", DecisionKind.ESCALATED, "error_rate_evaluate"),
        # 60..79: the rollback covers the episode; 80: healthy, re-armed; 90: a new episode
        (90, "error_rate", DecisionKind.ROLLBACK, None),
    ]


def test_deferred_verdict_waits_for_data_past_its_deadline(policy: Policy) -> None:
    source = FakeSource()
    few = policy.rule("error_rate_evaluate").min_samples - 1
    source.set(Metric.ERROR_RATE, CRUD, 0.07)
    ev = Evaluator(policy, _baseline(policy), deployed_at=0.0)
    assert [d.kind for d in ev.tick(0.0, source)] == [DecisionKind.DEFERRED]
    source.set(Metric.ERROR_RATE, CRUD, 0.07, samples=few)
    assert _run(ev, source, range(1, 400)) == []
    source.set(Metric.ERROR_RATE, CRUD, 0.07, samples=1000)
    assert [d.kind for d in ev.tick(400.0, source)] == [DecisionKind.ESCALATED]


def test_medium_trigger_escalates_after_ten_minutes(policy: Policy) -> None:
    source = FakeSource()
    source.set(Metric.CACHE_HIT_RATE, GLOBAL, 0.3)  # below half of 0.9
    ev = Evaluator(policy, _baseline(policy), deployed_at=0.0)
    got = _run(ev, source, range(0, 601, 10))
    assert [(d.time, d.trigger_id, d.kind) for d in got] == [
        (0, "cache_hit_drop", DecisionKind.DEFERRED),
        (600, "cache_hit_drop", DecisionKind.ESCALATED),
    ]


# --- episodes, sustain, time scale, observation window --------------------------------


def test_one_decision_per_episode_and_rearm(policy: Policy) -> None:
    source = FakeSource()
    restarts = Replay([(0, 6), (100, 2), (200, 7)])
    source.set(Metric.CONTAINER_RESTARTS, ASGI, restarts)
    ev = Evaluator(policy, _baseline(policy), deployed_at=0.0)
    got = _run(ev, source, range(0, 300))
    assert [(d.time, d.trigger_id, d.kind) for d in got] == [
        (0, "asgi_restarts", DecisionKind.ROLLBACK),
        (200, "asgi_restarts", DecisionKind.ROLLBACK),
    ]


def test_rollback_within_has_a_deadline(policy: Policy) -> None:
    source = FakeSource()
    source.set(Metric.REDIS_CONNECTION_FAILURES, GLOBAL, 11)
    ev = Evaluator(policy, _baseline(policy), deployed_at=0.0)
    (decision,) = ev.tick(5.0, source)
    assert (decision.kind, decision.action, decision.deadline) == (
        DecisionKind.ROLLBACK,
        Action.ROLLBACK_WITHIN,
        905.0,
    )
    assert decision.is_rollback() and "rollback within 900 s" in decision.message


def test_memory_must_stay_high_for_the_sustain_period(policy: Policy) -> None:
    source = FakeSource()
    dip = Replay([(0, 0.97), (60, 0.90), (61, 0.97)])
    source.set(Metric.MEMORY_USAGE_RATIO, ASGI, dip)
    ev = Evaluator(policy, _baseline(policy), deployed_at=0.0)
    got = _run(ev, source, range(0, 200))
    assert [(d.time, d.trigger_id) for d in got] == [(181, "memory_leak")]


def test_time_scale_compresses_windows_deadlines_and_sustain(policy: Policy) -> None:
    quick = policy.scaled(10)
    source = FakeSource()
    source.set(Metric.ERROR_RATE, CRUD, 0.07)
    source.set(Metric.MEMORY_USAGE_RATIO, ASGI, 0.97)
    ev = Evaluator(quick, _baseline(quick), deployed_at=0.0)
    got = _run(ev, source, range(0, 31))
    assert [(d.time, d.trigger_id, d.kind) for d in got] == [
        (0, "error_rate_evaluate", DecisionKind.DEFERRED),
        (12, "memory_leak", DecisionKind.ROLLBACK),
        (30, "error_rate_evaluate", DecisionKind.ESCALATED),
    ]
    assert got[0].deadline == 30.0 and got[0].window_s == 6.0 and got[0].time_scale == 10.0
    assert got[1].deadline == 12.0 + 90.0
    windows = {(m, w) for m, _, w, _ in source.reads}
    assert ("container_restarts", 60.0) in windows and ("support_tickets", 360.0) in windows


def test_new_episodes_only_within_the_observation_window(policy: Policy) -> None:
    quick = policy.scaled(10)  # 2 hours -> 720 s
    source = FakeSource()
    source.set(Metric.ERROR_RATE, CRUD, Replay([(0, 0.0), (700, 0.07), (721, 0.5)]))
    source.set(Metric.AUTH_FAILURE_RATE, GLOBAL, Replay([(0, 0.0), (721, 0.5)]))
    ev = Evaluator(quick, _baseline(quick), deployed_at=0.0)
    got = _run(ev, source, range(0, 800))
    assert [(d.time, d.trigger_id, d.kind) for d in got] == [
        (700, "error_rate_evaluate", DecisionKind.DEFERRED),
        # 721: worse, but no new episode (error_rate, auth_failures) after the window;
        # the open verdict still resolves at its deadline
        (730, "error_rate_evaluate", DecisionKind.ESCALATED),
    ]


def test_observation_window_starts_at_the_first_tick_by_default(policy: Policy) -> None:
    quick = policy.scaled(100)  # 72 s
    source = FakeSource()
    source.set(Metric.SECURITY_FINDINGS, GLOBAL, Replay([(0, 0), (1100, 1)]))
    ev = Evaluator(quick, _baseline(quick))
    assert _run(ev, source, range(1000, 1080)) == []
    assert ev.deployed_at == 1000
    source.set(Metric.SECURITY_FINDINGS, GLOBAL, 1)
    assert ev.tick(1080.0, source) == []  # 80 s after deployment: outside the window


def test_a_replayed_incident(policy: Policy) -> None:
    """An error-rate ramp as a monitor would record it, once per 5 s."""
    ramp = [(t, min(0.002 * 1.05 ** (t / 5), 0.3)) for t in range(0, 600, 5)]
    source = FakeSource()
    source.set(Metric.ERROR_RATE, Scope.category("auth"), Replay(ramp))
    ev = Evaluator(policy, _baseline(policy), deployed_at=0.0)
    got = _run(ev, source, range(0, 600, 5))
    kinds = [(d.trigger_id, d.kind) for d in got]
    assert kinds == [
        ("error_rate_monitor", DecisionKind.MONITOR),
        ("error_rate_evaluate", DecisionKind.DEFERRED),
        ("error_rate", DecisionKind.ESCALATED),
    ]
    first_rollback = next(d for d in got if d.is_rollback())
    assert first_rollback.value is not None and first_rollback.value > 0.10
    assert all(d.scope == Scope.category("auth") for d in got)


# --- decisions and the live view -------------------------------------------------------


def test_decision_carries_what_the_report_needs(policy: Policy) -> None:
    source = FakeSource()
    source.set(Metric.P95_LATENCY, CRUD, 0.5)
    ev = Evaluator(policy, _baseline(policy), deployed_at=0.0)
    (d,) = _of(_run(ev, source, range(3, 4 + SUSTAIN)), "wsgi_p95_latency")
    assert (d.time, d.metric, d.scope, d.value, d.samples) == (
        3.0 + SUSTAIN,
        "p95_latency",
        CRUD,
        0.5,
        1000,
    )
    assert (d.comparison, d.threshold, d.baseline, d.band) == ("gt", 2 * P95_BASE, P95_BASE, None)
    assert (d.severity, d.action, d.deadline, d.window_s) == (
        "high",
        "immediate_rollback",
        None,
        60,
    )
    assert d.message == (
        "wsgi_p95_latency at category:crud: 500 ms (condition > 240 ms, 2x baseline 120 ms, "
        "60 s window, 1000 samples) -> immediate rollback [high]"
    )


@pytest.mark.parametrize(
    ("kind", "rollback"),
    [
        (DecisionKind.ROLLBACK, True),
        (DecisionKind.ESCALATED, True),
        (DecisionKind.DEFERRED, False),
        (DecisionKind.CLEARED, False),
        (DecisionKind.MONITOR, False),
    ],
)
def test_is_rollback(policy: Policy, kind: DecisionKind, rollback: bool) -> None:
    source = FakeSource()
    source.set(Metric.ERROR_RATE, CRUD, 0.5)
    ev = Evaluator(policy, _baseline(policy), deployed_at=0.0)
    (d,) = ev.tick(0.0, source)
    assert Decision(**{**d.__dict__, "kind": kind}).is_rollback() is rollback


def test_status_lists_every_rule_at_every_scope(policy: Policy) -> None:
    source = FakeSource()
    source.set(Metric.ERROR_RATE, CRUD, 0.07)
    ev = Evaluator(policy, _baseline(policy), deployed_at=0.0)
    ev.tick(0.0, source)
    status = {(s.rule_id, s.scope): s for s in ev.status()}
    assert len(status) == sum(len(r.scopes()) for r in policy.rules())
    pending = status[("error_rate_evaluate", CRUD)]
    assert (pending.state, pending.deadline, pending.value) == ("deferred", 300.0, 0.07)
    assert status[("error_rate", CRUD)].condition == "> 10 %"


def test_ticks_must_not_go_back_in_time(policy: Policy) -> None:
    ev = Evaluator(policy, _baseline(policy), deployed_at=0.0)
    ev.tick(10.0, FakeSource())
    with pytest.raises(ValueError, match="before the previous tick"):
        ev.tick(9.0, FakeSource())


@dataclass
class IntervalSource(FakeSource):
    """A P95 reading at CRUD with a 80 % interval."""

    interval: tuple[float, float] | None = None

    def read(self, metric: str, scope: Scope, window_s: float, now: float) -> Reading:
        r = super().read(metric, scope, window_s, now)
        if metric == Metric.P95_LATENCY and scope == CRUD and self.interval is not None:
            return Reading(r.value, r.samples, *self.interval)
        return r


@pytest.mark.parametrize(
    ("low", "fires"),
    [(1.4 * P95_BASE, False), (1.5 * P95_BASE, False), (1.51 * P95_BASE, True)],
)
def test_a_sampled_p95_is_judged_by_the_lower_end_of_its_interval(
    policy: Policy, low: float, fires: bool
) -> None:
    """1.7x baseline as a point, but the interval's lower end decides the 1.5x rule."""
    source = IntervalSource(interval=(low, 2.1 * P95_BASE))
    source.set(Metric.P95_LATENCY, CRUD, 1.7 * P95_BASE)
    ev = Evaluator(policy, _baseline(policy), deployed_at=0.0)
    decided = _of(_run(ev, source, range(0, SUSTAIN + 1)), "performance_degradation")
    assert [d.kind for d in decided] == ([DecisionKind.DEFERRED] if fires else [])
    if fires:
        assert decided[0].value == pytest.approx(1.7 * P95_BASE)  # the point is reported
        assert "80 % interval 181.2 ms-252 ms" in decided[0].message
    later = range(SUSTAIN + 1, 3 * SUSTAIN)
    assert _of(_run(ev, source, later), "wsgi_p95_latency") == []  # 2x: not shown


def test_a_deferred_p95_verdict_clears_when_its_interval_reaches_below(policy: Policy) -> None:
    source = IntervalSource(interval=(1.6 * P95_BASE, 1.9 * P95_BASE))
    source.set(Metric.P95_LATENCY, CRUD, 1.7 * P95_BASE)
    ev = Evaluator(policy, _baseline(policy), deployed_at=0.0)
    got = _run(ev, source, range(0, SUSTAIN + 1))
    assert [d.kind for d in _of(got, "performance_degradation")] == [DecisionKind.DEFERRED]
    source.interval = (1.45 * P95_BASE, 1.9 * P95_BASE)  # the point stays at 1.7x
    got = ev.tick(SUSTAIN + 1.0, source)
    assert [d.kind for d in _of(got, "performance_degradation")] == [DecisionKind.CLEARED]
