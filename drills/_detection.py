"""Waiting for a decision and timing it: time to detect is measured from the moment the fault's
effect is on the traffic the monitor judges -- for a faulty release deployed through the
harness, the end of the deployment (the monitor's windows start there) or the load's first
answer from it; for a fault injected later, the fault's own ``live_at``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rollback_drill.decisions import Decision, DecisionKind
from rollback_drill.drill import DrillRun
from rollback_drill.faults import Fault, FaultyRelease
from rollback_drill.metrics import Scope

from ._verdicts import DEFERRED, PLAN, ROLLBACK


def hybrid(run: DrillRun) -> None:
    """Baseline on pre-hybrid, then the healthy hybrid release deployed (the monitor starts)."""
    run.capture_baseline()
    run.deploy(run.stack.target.releases.next)


def window(run: DrillRun, rule_id: str, times: float = 1.0) -> float:
    """``times`` the rule's (time-scaled) window."""
    return run.policy.scale(run.policy.rule(rule_id).window_s) * times


def sleep_until(wall: float) -> None:
    """Let wall-clock time reach ``wall``: the period itself is what a reading measures."""
    while (left := wall - time.time()) > 0:
        time.sleep(min(left, 0.5))


@dataclass(frozen=True)
class Detection:
    decision: Decision
    origin: float
    time_to_detect_s: float


def origin_of(run: DrillRun, fault: Fault | None = None, first: float | None = None) -> float:
    """When the effect reached the traffic the monitor judges (see the module docstring):
    ``first`` is when the load first got an answer from the faulty release, if known."""
    since = run.source.not_before or time.time()
    live = first if first is not None else (fault.live_at if fault is not None else None)
    return max(since, live if live is not None else since)


@dataclass
class FirstAnswer:
    """When the load first got an answer of ``categories`` from ``release`` (record's end)."""

    release: str
    categories: frozenset[str]
    at: float | None = None


@contextmanager
def faulty_release(
    run: DrillRun, fault: FaultyRelease, *categories: str, timeout_s: float = 30.0
) -> Iterator[FirstAnswer]:
    """Deploy ``fault`` (through the harness), prove its effect, and note when the load met it
    first. The faulty release is left deployed: the drill's stack is discarded after it."""
    first = FirstAnswer(fault.release, frozenset(categories))
    store = run.store
    append = store.append

    def watching(record: Any) -> None:
        if (
            first.at is None
            and record.release == first.release
            and (record.category in first.categories)
        ):
            first.at = record.ended
        append(record)

    store.append = watching  # type: ignore[method-assign]
    try:
        fault.apply()
        fault.verify_effect(timeout_s)
        yield first
    finally:
        store.append = append  # type: ignore[method-assign]
        fault.abandon("left deployed: the drill's stack is discarded")


def detect(
    run: DrillRun,
    trigger: str,
    *,
    origin: float,
    budget_s: float,
    record_property: Callable[[str, object], None],
    scope: Scope | None = None,
) -> Detection:
    """Wait for ``trigger``'s verdict, check it against the plan and the budget, record it."""
    verdict = PLAN[trigger]
    monitor = run.monitor
    assert monitor is not None, "the monitor is not running: deploy first"

    def accept(d: Decision) -> bool:
        return (
            d.trigger_id == trigger
            and d.kind in verdict.kinds
            and (scope is None or d.scope == scope)
        )

    timeout = max(5.0, origin + 2 * budget_s - time.time())
    decision = monitor.wait_for_decision(
        accept, timeout_s=timeout, what=f"a {trigger} decision ({verdict.action})"
    )
    ttd = decision.time - origin
    run.mark(f"decision {trigger}", verdict=str(decision.kind), ttd_s=round(ttd, 2))
    threshold: Any = decision.threshold if decision.band is None else list(decision.band)
    record_property("trigger", trigger)
    record_property("decision", f"{decision.kind}: {decision.action}")
    record_property("severity", str(decision.severity))
    record_property("scope", str(decision.scope))
    record_property("measured_value", _num(decision.value))
    record_property("threshold", _num(threshold) if not isinstance(threshold, list) else threshold)
    record_property("time_to_detect_s", round(ttd, 2))
    record_property("detect_budget_s", round(budget_s, 1))
    assert str(decision.severity) == verdict.severity, (
        f"the policy gives {trigger} severity {decision.severity}, the plan says "
        f"{verdict.severity} ({decision.message})"
    )
    assert str(decision.action) == verdict.action, (
        f"the policy gives {trigger} the action {decision.action}, the plan says "
        f"{verdict.action} ({decision.message})"
    )
    assert ttd <= budget_s, f"{trigger} detected in {ttd:.1f} s, budget {budget_s:.1f} s"
    return Detection(decision, origin, ttd)


def _num(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else str(value)
    return value


def assert_no_decision(
    run: DrillRun,
    trigger: str,
    *,
    observe_s: float,
    record_property: Callable[[str, object], None],
    kinds: frozenset[DecisionKind] = ROLLBACK | DEFERRED,
    since: float | None = None,
) -> None:
    """Watch for ``observe_s``: ``trigger`` must decide nothing of ``kinds`` meanwhile (with
    ``since``: from then on -- what the deployment itself decided before a fault is not the
    fault's; it is recorded as ``decision_before_fault``)."""
    monitor = run.monitor
    assert monitor is not None
    deadline = time.monotonic() + observe_s
    while time.monotonic() < deadline:  # the observation period is what is measured
        time.sleep(0.5)
        assert monitor.error is None, monitor.error
    matching = [d for d in monitor.snapshot() if d.trigger_id == trigger and d.kind in kinds]
    decided = [d for d in matching if since is None or d.time >= since]
    earlier = [d.message for d in matching if d not in decided]
    if earlier:
        record_property("decision_before_fault", earlier[0])
    record_property("trigger", trigger)
    record_property("observed_s", round(observe_s, 1))
    record_property("decision", "none" if not decided else decided[0].message)
    assert decided == [], [d.message for d in decided]


def scale_budget(run: DrillRun, plan_window_s: float, extra_s: float | None = None) -> float:
    """A detection budget from a window the policy does not hold: the window at this run's
    time scale, plus the policy's slack. A rule's own budget is
    ``run.policy.detect_budget_s(rule_id)`` (its window, sustain period and slack)."""
    slack = run.policy.drills.detect_slack_s if extra_s is None else extra_s
    return run.policy.scale(plan_window_s) + slack
