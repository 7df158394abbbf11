"""What the trigger and boundary drills share: the plan's expected verdicts, waiting for a
decision and timing it, the injected-vs-measured check, and the JUnit properties.

Time to detect is measured from the moment the fault's effect is on the traffic the monitor
judges: for a faulty release deployed through the harness, the end of the deployment (the
monitor's windows start there); for a fault injected later, the fault's own ``live_at``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

from rollback_drill.announce import FileSink
from rollback_drill.checks.base import CheckResult
from rollback_drill.checks.checklist import run_checklist
from rollback_drill.checks.data import no_acked_write_lost
from rollback_drill.checks.success import rollback_in_time
from rollback_drill.decisions import Decision, DecisionKind, Reading
from rollback_drill.defects import DefectLog
from rollback_drill.drill import DrillRun
from rollback_drill.errors import DrillError
from rollback_drill.faults import Fault, FaultyRelease
from rollback_drill.faults import faulty_releases as releases
from rollback_drill.metrics import Metric, Scope, ScopeKind
from rollback_drill.policy import Policy
from rollback_drill.report import DrillSummary, lessons_learned
from rollback_drill.rollback import (
    RollbackContext,
    RollbackResult,
    run_rollback,
)
from rollback_drill.rollback.choose import choose_phases, deployment_state
from rollback_drill.rollback.health import stopped_on_purpose
from rollback_drill.target import Target

RecordProperty = Callable[[str, object], None]
"""pytest's ``record_property`` fixture (it exports no type for it)."""

ROLLBACK = frozenset({DecisionKind.ROLLBACK, DecisionKind.ESCALATED})
DEFERRED = frozenset({DecisionKind.DEFERRED})
# Share of requests a slow release slows. The P95 lands among them (about their 75th
# percentile), and so does the lower end of its 80 % interval over a few dozen samples: with
# 10 % that end (~P91 of a 6-s window of ~48 streams) reached into the unslowed requests and
# the streaming release took ~11 s to detect (5.0 and 5.6 s with 20 %).
SLOWED = 0.20


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
class Verdict:
    """What the plan (as the policy resolves it) must decide for a trigger."""

    severity: str
    action: str
    kinds: frozenset[DecisionKind]


# The plan's triggers and their verdicts, written out here -- not read from policy.yaml -- so
# that a policy that drifts from the plan fails the drill instead of redefining it.
PLAN: dict[str, Verdict] = {
    "error_rate": Verdict("critical", "immediate_rollback", ROLLBACK),
    "service_unavailable": Verdict("critical", "immediate_rollback", ROLLBACK),
    "data_corruption": Verdict("critical", "immediate_rollback", ROLLBACK),
    "security_exposure": Verdict("critical", "immediate_rollback", ROLLBACK),
    "db_connection_failures": Verdict("critical", "immediate_rollback", ROLLBACK),
    # high triggers the matrix makes immediate (resolution: the stricter wins)
    "wsgi_p95_latency": Verdict("high", "immediate_rollback", ROLLBACK),
    "asgi_restarts": Verdict("high", "immediate_rollback", ROLLBACK),
    "auth_failures": Verdict("high", "immediate_rollback", ROLLBACK),
    # high triggers: "rollback within 15 minutes"
    "memory_leak": Verdict("high", "rollback_within", ROLLBACK),
    "redis_connection_failures": Verdict("high", "rollback_within", ROLLBACK),
    # medium triggers: "evaluate for rollback"
    "performance_degradation": Verdict("medium", "evaluate", DEFERRED),
    "websocket_disconnects": Verdict("medium", "evaluate", DEFERRED),
    "cache_hit_drop": Verdict("medium", "evaluate", DEFERRED),
    "user_complaints": Verdict("medium", "evaluate", DEFERRED),
    # matrix rows that are not triggers
    "error_rate_evaluate": Verdict("medium", "evaluate", DEFERRED),
    "error_rate_monitor": Verdict("low", "monitor", frozenset({DecisionKind.MONITOR})),
}


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


def steady_reading(
    run: DrillRun, metric: str, scope: Scope, *, since: float, window_s: float
) -> Reading:
    """The monitor's own reading of ``metric`` once a whole window holds only data from after
    ``since`` (windows widen to whole seconds, hence the extra second). A longer window than
    the rule's gives the same metric over more samples (WebSocket shares, percentiles)."""
    sleep_until(since + window_s + 1.0)
    return run.source.read(Metric(metric), scope, window_s, time.time())


@dataclass
class SlowRelease:
    """A release slowing exactly ``SLOWED`` of ``category``'s requests by ``delay_ms``: the
    delay solved on the baseline's latency histogram ``hist`` for a P95 of ``factor`` x the
    baseline P95 ``base`` (seconds)."""

    fault: FaultyRelease
    category: str
    factor: float
    base: float
    hist: list[tuple[float, int]]
    delay_ms: float


def slow_release(run: DrillRun, category: str, factor: float) -> SlowRelease:
    """Settle the baseline, then build the slow release of ``category`` (CRUD: the WSGI code;
    streaming: the ASGI code) that puts its P95 at ``factor`` x that baseline."""
    base = settled_baseline(run, category)
    hist = baseline_histogram(run, category)
    delay_ms = releases.p95_delay_ms(factor * base, hist, share=SLOWED)
    make = releases.slow_stream if category == "streaming" else releases.slow_crud
    fault = make(run.stack, delay_ms, share=SLOWED, deploy=run.deploy)
    return SlowRelease(fault, category, factor, base, hist, delay_ms)


# How far nginx's measurement of a fault's level may be from the level the fault aims at:
# P95 multiples relative, error shares in absolute points.
LEVEL_TOLERANCE = {"p95": 0.20, "error_rate": 0.015}


def check_aimed_level(
    run: DrillRun,
    metric: str,
    category: str,
    aimed: float,
    *,
    since: float,
    window_s: float,
    record_property: RecordProperty,
    windows: int = 3,
) -> None:
    """The level a fault aims at against nginx's own measurement of it (``signals.access_log``
    of the target: ``$request_time``, ``$status``), never against the load's records alone.

    ``metric``: ``p95`` (a multiple of the category's baseline P95, both read from nginx's log:
    the baseline from the entries ``DrillRun.capture_baseline`` kept) or ``error_rate`` (the
    share of 5xx answers). Read in ``windows`` consecutive windows of ``window_s`` after
    ``since``; the median window decides. Recorded: ``aimed_level``, ``measured_level``
    (nginx), ``generator_level`` (the monitor's reading of the same windows) and the
    tolerance; the check fails when nginx's level is off the aim by more than the tolerance.
    Without an access log on the target the level is "not observable on this target" (a
    property, not a pass of this check).
    """
    record_property("aimed_level", aimed)
    log = run.access_log
    if log is None or log.missing is not None:
        why = "no signals.access_log in the target" if log is None else log.missing
        record_property("level_check", f"not observable on this target: {why}")
        return
    base_nginx = None
    if metric == "p95":
        base_nginx, n = log.p95(run.access_baseline, category)
        assert base_nginx, f"nginx logged no {category} request in the baseline window ({n})"
        base_gen = baseline_value(run, "p95_pre_hybrid", Scope.category(category))
    measured: list[float] = []
    generated: list[float] = []
    counts: list[int] = []
    end = since + 1.0
    for _ in range(windows):
        end += window_s
        sleep_until(end + 1.0)  # nginx writes a line when the request ends: let it land
        entries = log.read(end - window_s, end)
        m = Metric.P95_LATENCY if metric == "p95" else Metric.ERROR_RATE
        reading = run.source.read(m, Scope.category(category), window_s, end)
        if metric == "p95":
            value, n = log.p95(entries, category)
            assert value is not None and base_nginx, f"nginx logged no {category} request"
            measured.append(value / base_nginx)
            generated.append((reading.value or 0.0) / base_gen)
        else:
            value, n = log.error_share(entries, category)
            assert value is not None, f"nginx logged no {category} request"
            measured.append(value)
            generated.append(reading.value or 0.0)
        counts.append(n)
    order = sorted(range(windows), key=lambda k: measured[k])
    mid = order[windows // 2]
    limits = run.policy.drills.level_tolerance
    tolerance = limits.p95_relative * aimed if metric == "p95" else limits.error_share_points
    record_property("level_instrument", f"nginx access log ({log.format})")
    record_property("measured_level", round(measured[mid], 4))
    record_property("generator_level", round(generated[mid], 4))
    record_property("level_windows_nginx", [round(x, 4) for x in measured])
    record_property("level_windows_generator", [round(x, 4) for x in generated])
    record_property("level_window_requests", counts)
    if base_nginx is not None:
        record_property("baseline_p95_ms_nginx", round(base_nginx * 1000, 2))
    record_property("level_tolerance", round(tolerance, 4))
    assert abs(measured[mid] - aimed) <= tolerance, (
        f"the fault missed its aim: nginx measured {metric} {measured[mid]:.4f} against the "
        f"aimed {aimed:.4f} (tolerance {tolerance:.4f}; the load generator read "
        f"{generated[mid]:.4f})"
    )


def check_level(
    policy: Policy,
    record_property: Callable[[str, object], None],
    *,
    injected: float,
    measured: float | None,
    ratio: bool = True,
) -> None:
    """Measured against injected: within the policy's ``reading_points`` (ratios) or
    ``reading_relative`` of the level, the larger."""
    record_property("injected_level", round(injected, 6))
    record_property("steady_value", None if measured is None else round(measured, 6))
    assert measured is not None, "no steady reading"
    limits = policy.drills.level_tolerance
    tolerance = max(limits.reading_points if ratio else 0.0, limits.reading_relative * injected)
    record_property("level_error", round(measured - injected, 6))
    assert abs(measured - injected) <= tolerance, (
        f"measured {measured:.4f} vs injected {injected:.4f} (tolerance {tolerance:.4f})"
    )


def assert_no_decision(
    run: DrillRun,
    trigger: str,
    *,
    observe_s: float,
    record_property: Callable[[str, object], None],
    kinds: frozenset[DecisionKind] = ROLLBACK | DEFERRED,
) -> None:
    """Watch for ``observe_s``: ``trigger`` must decide nothing of ``kinds`` meanwhile."""
    monitor = run.monitor
    assert monitor is not None
    deadline = time.monotonic() + observe_s
    while time.monotonic() < deadline:  # the observation period is what is measured
        time.sleep(0.5)
        assert monitor.error is None, monitor.error
    decided = [d for d in monitor.snapshot() if d.trigger_id == trigger and d.kind in kinds]
    record_property("trigger", trigger)
    record_property("observed_s", round(observe_s, 1))
    record_property("decision", "none" if not decided else decided[0].message)
    assert decided == [], [d.message for d in decided]


def settled_baseline(
    run: DrillRun, category: str, *, tolerance: float = 0.5, tries: int = 5
) -> float:
    """Capture the baseline until two captures in a row agree on ``category``'s P95 within
    ``tolerance``; returns that P95. A drill that sets the P95 to a multiple of its baseline
    needs a baseline that is the stack's, not a burst of the machine's (on a busy 2-core host
    one 12-s capture swung from 28 to 1458 ms)."""
    scope = Scope.category(category)
    seen: list[float] = []
    for _ in range(tries):
        run.capture_baseline()
        seen.append(baseline_value(run, "p95_pre_hybrid", scope))
        if len(seen) > 1 and abs(seen[-1] - seen[-2]) <= tolerance * min(seen[-2:]):
            return seen[-1]
    shown = ", ".join(f"{v * 1000:.0f} ms" for v in seen)
    pytest.fail(f"the {category} P95 baseline did not settle ({shown}): host too busy")


def baseline_histogram(run: DrillRun, category: str) -> list[tuple[float, int]]:
    """The category's latencies over the baseline window just captured (pre-hybrid)."""
    hist = run.store.histogram(category, *run.baseline_window())
    assert hist, f"no {category} traffic in the baseline window"
    return hist


def baseline_value(run: DrillRun, baseline_id: str, scope: Scope) -> float:
    assert run.baseline is not None
    value = run.baseline.get(baseline_id, scope)
    assert value is not None and value.usable and value.value is not None, value
    return value.value


def scale_budget(run: DrillRun, plan_window_s: float, extra_s: float | None = None) -> float:
    """A detection budget from a window the policy does not hold: the window at this run's
    time scale, plus the policy's slack. A rule's own budget is
    ``run.policy.detect_budget_s(rule_id)`` (its window, sustain period and slack)."""
    slack = run.policy.drills.detect_slack_s if extra_s is None else extra_s
    return run.policy.scale(plan_window_s) + slack


# ---- infrastructure drills on any target -----------------------------------------------------


def not_observable(record_property: RecordProperty, why: str) -> NoReturn:
    """Skip a drill whose signal this target cannot give, saying why -- never a pass."""
    record_property("observability", "not observable")
    pytest.skip(f"not observable on this target: {why}")


def observability_gap(target: Target, policy: Policy, trigger: str, role: str) -> str | None:
    """Why the shipped monitor cannot read ``trigger`` on this target when the fault hits the
    service of ``role``, or None when it can. Looks at what the monitor's sources need: a
    service scope must name the target's service, a category scope a category its traffic
    profile sends, a DB/Redis failure metric the app's failure-cause header (the monitor reads
    those two metrics from nothing else)."""
    rule = policy.rule(trigger)
    service = target.service(role)
    names = rule.scope.names_given()
    read = {target.service(n) for n in names}  # a scope names a role or a service
    if rule.scope.kind in (ScopeKind.SERVICE, ScopeKind.SERVICES) and service not in read:
        return (
            f"the policy's {trigger} reads {rule.metric} of {list(names)}, and this "
            f"target's {role} service is {service!r}"
        )
    if rule.scope.is_category():
        sent = target.traffic.observable()
        if not set(names) & sent:
            return f"{trigger} reads categories {list(names)}; the profile sends {sorted(sent)}"
    failures = (Metric.DB_CONNECTION_FAILURE_RATE, Metric.REDIS_CONNECTION_FAILURES)
    if rule.metric in failures and target.traffic.headers.failure_cause is None:
        return (
            f"the monitor counts {rule.metric} only from the app's failure-cause answer "
            "header, and this target's traffic profile names none (traffic.headers."
            "failure_cause); no black-box source (Redis INFO, PostgreSQL views) feeds it"
        )
    return None


def chosen_phases(
    run: DrillRun,
    decision: Decision,
    prescribed: tuple[int, ...],
    record_property: RecordProperty,
) -> tuple[int, ...]:
    """The phases the product chooses for ``decision`` from what the deployment changed
    (``rollback.choose``); the drill fails unless they are the ones the plan prescribes for its
    defect (``prescribed``, written in the drill)."""
    state = deployment_state(run.stack, run.stack.target.releases.previous)
    chosen = choose_phases(decision, state, run.stack.target)
    record_property("deployment_changed", state.describe())
    record_property("phases_chosen", "->".join(map(str, chosen.phases)))
    record_property("phases_reasons", "; ".join(chosen.reasons))
    run.journal.event("rollback", "phases chosen", phases=list(chosen.phases), why=chosen.reasons)
    assert chosen.phases == prescribed, (
        f"the executor's chooser picked {chosen.describe()}; the plan prescribes "
        f"{'->'.join(map(str, prescribed))} for this defect"
    )
    return chosen.phases


def execute_rollback(
    run: DrillRun,
    phases: tuple[int, ...],
    decision: Decision,
    *,
    sink_path: Path,
    defects: DefectLog,
    holder: str,
    record: DrillSummary,
    record_property: RecordProperty,
) -> tuple[RollbackResult, float]:
    """The executor runs ``phases`` for ``decision`` (its announcements into ``sink_path``)
    under the drill's policy (its budgets; status updates at its scaled interval); returns the
    result and when the rollback ended (wall time). A rollback that fails leaves its Lessons
    Learned ("Partial"/"No", the failing phase and step) and its announcements in the report
    before the error goes on."""
    ctx = RollbackContext(
        run.stack,
        reason=decision.message,
        sink=FileSink(sink_path),
        defects=defects,
        backups=run.backups,
        holder=holder,
        policy=run.policy,
    )
    run.mark("rollback start")
    try:
        result = run_rollback(ctx, phases)
    except DrillError as exc:
        run.mark("rollback failed")
        if ctx.result is not None:
            for key, value in ctx.result.properties().items():
                record_property(key, value)
        record.lessons = lessons_learned(decision.message, ctx.result, failure=str(exc))
        if sink_path.exists():
            record.announcement = sink_path.read_text()
        raise
    rolled_back_at = run.mark("rollback end")
    for key, value in result.properties().items():
        record_property(key, value)
    if sink_path.exists():
        record.announcement = sink_path.read_text()
    return result, rolled_back_at


def verify_after_rollback(
    run: DrillRun,
    result: RollbackResult,
    phases: tuple[int, ...],
    rolled_back_at: float,
    issue: str,
    record: DrillSummary,
    record_property: RecordProperty,
) -> list[CheckResult]:
    """The plan's Rollback Validation Checklist, no data loss and the success criterion's clock,
    read under the same load after a rollback; the Lessons Learned filled from them.

    The checklist judges the stack after one (scaled) minute to settle, over one (scaled) minute
    observed -- at least 20 s and 30 s (the policy's ``checklist`` period): on 2 cores the
    replicas Phase 2 starts take 10-20 s to warm, and a P95 read over their first seconds says
    nothing about the rolled-back release (it read 3x baseline once at 6 s); the P95 is judged
    in thirds, each >= 100 CRUD requests. The services the phases stopped on purpose (from the
    commands they ran) may be stopped; every other container must be running and healthy.
    """
    settle_s, observe_s = run.policy.checklist_period_s()
    stopped = stopped_on_purpose(result, run.stack.compose.base)
    record_property("stopped_on_purpose", " ".join(stopped))
    if run.load is not None:
        run.load.wait_for_writes(5, after=rolled_back_at, timeout_s=60)
    since = rolled_back_at + settle_s
    sleep_until(since + observe_s)  # the observation period itself is what is measured
    assert run.baseline is not None
    checks = run_checklist(
        run.stack,
        run.store,
        run.policy,
        run.baseline,
        since=since,
        baseline_window=run.baseline_window(),
        stopped=stopped,
    )
    dsn = run.stack.postgres_dsn()
    checks.append(no_acked_write_lost(dsn, run.ledger, run.stack.target.read_back))
    checks.append(rollback_in_time(result.time_to_rollback_s, run.policy, budget_s=result.budget_s))
    run.mark("checklist done")
    for c in checks:
        record_property(f"check:{c.name}", "pass" if c.passed else f"FAIL {c.measured!r}")
    record.lessons = lessons_learned(issue, result, checks)
    return checks
