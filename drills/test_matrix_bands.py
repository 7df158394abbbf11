"""The decision matrix's bands, and every other trigger just short of its threshold.

Bands: error rate above 10 % -> immediate rollback; 5-10 % -> evaluate in 5 minutes (a deferred
verdict due then, escalated because the fault still holds); under 5 % -> monitor closely;
P95 above 2x baseline -> immediate rollback; 1.5-2x -> evaluate in 10 minutes.

Just below: each other trigger driven to a level short of its threshold must not decide
(neither rollback nor evaluate). Where the fault is, physically, also something else (DB
failures are errors too), other rules may speak; the assertion is about the trigger under
test. For data corruption and security exposure, "below the threshold" is no finding at all:
the probes run against a healthy hybrid deployment.
"""

from __future__ import annotations

import time

import pytest

from rollback_drill.drill import DrillRun
from rollback_drill.faults import CrashProcess, StopContainers, TicketSpike, injected
from rollback_drill.faults import faulty_releases as releases
from rollback_drill.metrics import Scope
from rollback_drill.traffic import Category

from ._support import (
    ROLLBACK,
    RecordProperty,
    assert_no_decision,
    baseline_value,
    check_aimed_level,
    check_level,
    detect,
    faulty_release,
    hybrid,
    origin_of,
    slow_release,
    steady_reading,
    window,
)

pytestmark = [
    pytest.mark.full,
    pytest.mark.nightly,
    pytest.mark.needs_releases(*releases.RELEASES),
]

CRUD = Scope.category("crud")
EVERYWHERE = Scope.everywhere()


def mix_share(run: DrillRun, *categories: Category) -> float:
    """Share of the load's requests in ``categories`` once the hybrid is deployed (every
    category on, WebSockets included)."""
    assert run.load is not None
    weights = run.load.generator.mix.weights
    return sum(weights.get(c, 0) for c in categories) / sum(weights.values())


def resolve_p95_band(run: DrillRun, rule_id: str, category: Category) -> None:
    """Compress the plan's time less for this drill (before its baseline), so that one window
    of ``rule_id`` holds the policy's ``drills.p95_band_samples`` requests of ``category`` (a
    P95 of fewer samples is a wider interval than the 1.5-2x band) at the run's load once
    the hybrid serves. Sessions 5-8 ran the 1.5-2x band on 6 s windows: of 10 runs aimed at
    1.7-1.75x, the first window read 1.64-2.21x and 3 went past 2x."""
    rule = run.policy.rule(rule_id)
    per_s = run.rate * mix_share(run, category)
    compression = rule.window_s * per_s / run.policy.drills.p95_band_samples
    if compression < run.policy.time_scale:
        run.policy = run.policy.scaled(max(1.0, compression))


def wsgi_share(run: DrillRun) -> float:
    """Share of the requests passing a WSGI path the share faults act on (CRUD, the auth
    check, the admin)."""
    return mix_share(run, Category.CRUD, Category.AUTH, Category.ADMIN)


# ---- error rate bands ----------------------------------------------------------------------


def test_error_rate_above_10_percent_is_immediate_rollback(
    drill_run: DrillRun, record_property: RecordProperty
) -> None:
    run, share = drill_run, drill_run.policy.level("error_rate_above")
    run.capture_baseline()
    fault = releases.failing_share(run.stack, share, deploy=run.deploy)
    with faulty_release(run, fault, "crud") as first:
        origin = origin_of(run, fault, first.at)
        detect(
            run,
            "error_rate",
            origin=origin,
            scope=CRUD,
            budget_s=run.policy.detect_budget_s("error_rate"),
            record_property=record_property,
        )
        check_aimed_level(
            run,
            "error_rate",
            "crud",
            share,
            since=origin,
            window_s=window(run, "error_rate"),
            record_property=record_property,
        )


def test_error_rate_5_to_10_percent_is_evaluate_in_5_minutes(
    drill_run: DrillRun, record_property: RecordProperty
) -> None:
    run, share = drill_run, drill_run.policy.level("error_rate_evaluate_band")
    run.capture_baseline()
    fault = releases.failing_share(run.stack, share, deploy=run.deploy)
    with faulty_release(run, fault, "crud") as first:
        origin = origin_of(run, fault, first.at)
        found = detect(
            run,
            "error_rate_evaluate",
            origin=origin,
            scope=CRUD,
            budget_s=run.policy.detect_budget_s("error_rate_evaluate"),
            record_property=record_property,
        )
        deferred = found.decision
        assert deferred.deadline is not None
        due_in = deferred.deadline - deferred.time
        record_property("verdict_due_in_s", round(due_in, 2))
        deadline_s = run.policy.rule("error_rate_evaluate").deadline_s
        assert deadline_s is not None
        assert due_in == pytest.approx(run.policy.scale(deadline_s), abs=0.01)
        check_aimed_level(
            run,
            "error_rate",
            "crud",
            share,
            since=origin,
            window_s=window(run, "error_rate"),
            record_property=record_property,
        )
        # the band's verdict: the rate still holds at the deadline -> rollback, not before
        assert run.monitor is not None
        verdict = run.monitor.wait_for_decision(
            lambda d: d.trigger_id == "error_rate_evaluate" and d.kind in ROLLBACK,
            timeout_s=max(5.0, deferred.deadline + 10 - time.time()),
            what="the deferred error-rate verdict at its deadline",
        )
        early = [
            d
            for d in run.monitor.snapshot()
            if d.trigger_id.startswith("error_rate")
            and d.is_rollback()
            and d.time < deferred.deadline - 1.0
        ]
        assert early == [], [d.message for d in early]
        record_property("verdict", f"{verdict.kind} at +{verdict.time - deferred.time:.1f} s")
        assert verdict.time >= deferred.deadline - 1.0


def test_error_rate_under_5_percent_is_monitor_closely(
    drill_run: DrillRun, record_property: RecordProperty
) -> None:
    run, share = drill_run, drill_run.policy.level("error_rate_monitor_band")
    run.capture_baseline()
    fault = releases.failing_share(run.stack, share, deploy=run.deploy)
    with faulty_release(run, fault, "crud") as first:
        origin = origin_of(run, fault, first.at)
        detect(
            run,
            "error_rate_monitor",
            origin=origin,
            scope=CRUD,
            budget_s=run.policy.detect_budget_s("error_rate_monitor"),
            record_property=record_property,
        )
        check_aimed_level(
            run,
            "error_rate",
            "crud",
            share,
            since=origin,
            window_s=window(run, "error_rate"),
            record_property=record_property,
        )
        for rule in ("error_rate", "error_rate_evaluate"):
            assert_no_decision(run, rule, observe_s=1.0, record_property=lambda *a: None)


# ---- P95 bands -----------------------------------------------------------------------------


def test_p95_above_2x_baseline_is_immediate_rollback(
    drill_run: DrillRun, record_property: RecordProperty
) -> None:
    run = drill_run
    slow = slow_release(run, "crud", run.policy.level("p95_above_rollback"))
    with faulty_release(run, slow.fault, "crud") as first:
        origin = origin_of(run, slow.fault, first.at)
        detect(
            run,
            "wsgi_p95_latency",
            origin=origin,
            scope=CRUD,
            budget_s=run.policy.detect_budget_s("wsgi_p95_latency"),
            record_property=record_property,
        )
        check_aimed_level(
            run,
            "p95",
            slow.category,
            slow.factor,
            since=origin,
            window_s=window(run, "wsgi_p95_latency", 2),
            record_property=record_property,
        )


def test_p95_1_5_to_2x_baseline_is_evaluate_in_10_minutes(
    drill_run: DrillRun, record_property: RecordProperty
) -> None:
    run = drill_run
    resolve_p95_band(run, "performance_degradation", Category.CRUD)
    record_property("time_scale", run.policy.time_scale)
    # Aimed at 1.6x: the slowed release slows the requests it does not mark too (the stack
    # with the slowdown, the injected level, read 1.68-1.86x in two session-8 runs aimed at
    # 1.7x on 21 s windows, and 1.62-1.65x in one at 1.6x; median 1.87x over 18 windows of
    # sessions 5-7), and the upper edge is where a wrong "immediate rollback" lies.
    slow = slow_release(run, "crud", run.policy.level("p95_evaluate_band"))
    with faulty_release(run, slow.fault, "crud") as first:
        origin = origin_of(run, slow.fault, first.at)
        found = detect(
            run,
            "performance_degradation",
            origin=origin,
            scope=CRUD,
            budget_s=run.policy.detect_budget_s("performance_degradation"),
            record_property=record_property,
        )
        assert found.decision.deadline is not None
        due_in = found.decision.deadline - found.decision.time
        record_property("verdict_due_in_s", round(due_in, 2))
        deadline_s = run.policy.rule("performance_degradation").deadline_s
        assert deadline_s is not None
        assert due_in == pytest.approx(run.policy.scale(deadline_s), abs=0.01)
        check_aimed_level(
            run,
            "p95",
            slow.category,
            slow.factor,
            since=origin,
            window_s=window(run, "performance_degradation", 2),
            record_property=record_property,
        )
        assert_no_decision(
            run, "wsgi_p95_latency", observe_s=1.0, record_property=lambda *a: None, kinds=ROLLBACK
        )


# ---- just below every other trigger ------------------------------------------------------


def test_partial_outage_is_not_service_unavailable(
    drill_run: DrillRun, record_property: RecordProperty
) -> None:
    """WSGI down, ASGI up: CRUD, auth and admin fail, streaming and WebSockets do not."""
    run = drill_run
    hybrid(run)
    with injected(StopContainers(run.stack, run.stack.target.services.wsgi)):
        assert_no_decision(
            run,
            "service_unavailable",
            observe_s=run.policy.quiet_period_s("service_unavailable"),
            record_property=record_property,
        )
        assert run.monitor is not None
        assert any(d.trigger_id == "error_rate" for d in run.monitor.snapshot())


def test_db_failures_on_45_percent_of_requests(
    drill_run: DrillRun, record_property: RecordProperty
) -> None:
    run, level = drill_run, drill_run.policy.level("db_failures_below")
    run.capture_baseline()
    share = level / wsgi_share(run)
    paths = releases.AUTHENTICATED_WSGI_PATHS
    fault = releases.failing_share(run.stack, share, kind="db", paths=paths, deploy=run.deploy)
    with faulty_release(run, fault, "crud") as first:
        origin = origin_of(run, fault, first.at)
        assert_no_decision(
            run,
            "db_connection_failures",
            observe_s=run.policy.quiet_period_s("db_connection_failures"),
            record_property=record_property,
        )
        reading = steady_reading(
            run,
            "db_connection_failure_rate",
            EVERYWHERE,
            since=origin,
            window_s=window(run, "db_connection_failures"),
        )
        check_level(run.policy, record_property, injected=level, measured=reading.value)


def test_five_asgi_restarts(drill_run: DrillRun, record_property: RecordProperty) -> None:
    run = drill_run
    hybrid(run)
    with injected(CrashProcess(run.stack, run.stack.target.services.asgi, times=5)):
        assert_no_decision(run, "asgi_restarts", observe_s=8.0, record_property=record_property)


def test_memory_at_93_percent(drill_run: DrillRun, record_property: RecordProperty) -> None:
    run, cap = drill_run, drill_run.policy.level("memory_below")
    run.capture_baseline()
    fault = releases.leaky_asgi(run.stack, cap_ratio=cap, deploy=run.deploy)
    with faulty_release(run, fault, timeout_s=60):
        assert_no_decision(
            run,
            "memory_leak",
            observe_s=run.policy.quiet_period_s("memory_leak"),
            record_property=record_property,
        )
        asgi = Scope.service("asgi")  # the policy's scopes name the roles
        reading = run.source.read(
            "memory_usage_ratio", asgi, window(run, "memory_leak"), time.time()
        )
        check_level(run.policy, record_property, injected=cap, measured=reading.value)


def test_auth_failures_at_4_percent(drill_run: DrillRun, record_property: RecordProperty) -> None:
    run, level = drill_run, drill_run.policy.level("auth_failures_below")
    run.capture_baseline()
    fault = releases.failing_share(
        run.stack, level / wsgi_share(run), kind="auth", deploy=run.deploy
    )
    with faulty_release(run, fault, "crud") as first:
        origin = origin_of(run, fault, first.at)
        assert_no_decision(
            run,
            "auth_failures",
            observe_s=run.policy.quiet_period_s("auth_failures"),
            record_property=record_property,
        )
        reading = steady_reading(
            run,
            "auth_failure_rate",
            EVERYWHERE,
            since=origin,
            window_s=window(run, "auth_failures", 2),
        )
        check_level(run.policy, record_property, injected=level, measured=reading.value)


def test_seven_redis_failures_per_minute(
    drill_run: DrillRun, record_property: RecordProperty
) -> None:
    """About 7 failures per (scaled) minute: the count threshold is > 10."""
    run, per_window = drill_run, drill_run.policy.level("redis_failures_below")
    run.capture_baseline()
    crud_per_window = (
        run.rate * mix_share(run, Category.CRUD) * window(run, "redis_connection_failures")
    )
    fault = releases.failing_share(
        run.stack, per_window / crud_per_window, kind="redis", deploy=run.deploy
    )
    with faulty_release(run, fault, "crud") as first:
        origin = origin_of(run, fault, first.at)
        assert_no_decision(
            run,
            "redis_connection_failures",
            observe_s=run.policy.quiet_period_s("redis_connection_failures"),
            record_property=record_property,
        )
        reading = steady_reading(
            run,
            "redis_connection_failures",
            EVERYWHERE,
            since=origin,
            window_s=window(run, "redis_connection_failures"),
        )
        record_property("injected_level", per_window)
        record_property("steady_value", reading.value)
        threshold = run.policy.rule("redis_connection_failures").condition.threshold
        assert reading.value is not None and threshold is not None
        assert 0 < reading.value <= threshold


def test_websocket_disconnects_at_25_percent(
    drill_run: DrillRun, record_property: RecordProperty
) -> None:
    run, share = drill_run, drill_run.policy.level("websocket_disconnects_below")
    run.capture_baseline()
    fault = releases.ws_drop(run.stack, share, deploy=run.deploy)
    with faulty_release(run, fault, "websocket") as first:
        origin = origin_of(run, fault, first.at)
        assert_no_decision(
            run,
            "websocket_disconnects",
            observe_s=run.policy.quiet_period_s("websocket_disconnects"),
            record_property=record_property,
        )
        reading = steady_reading(
            run,
            "websocket_disconnect_rate",
            Scope.category("websocket"),
            since=origin,
            window_s=window(run, "websocket_disconnects", 3),
        )
        check_level(run.policy, record_property, injected=share, measured=reading.value)


def test_cache_hit_rate_down_by_40_percent(
    drill_run: DrillRun, record_property: RecordProperty
) -> None:
    run, miss = drill_run, 1 - drill_run.policy.level("cache_hit_above_drop")
    record_property("cache_hit_source", run.source.cache_source())
    run.capture_baseline()
    base = baseline_value(run, "cache_hit_pre_hybrid", EVERYWHERE)
    fault = releases.cache_miss(run.stack, miss, deploy=run.deploy)
    with faulty_release(run, fault, "crud") as first:
        origin = origin_of(run, fault, first.at)
        assert_no_decision(
            run,
            "cache_hit_drop",
            observe_s=run.policy.quiet_period_s("cache_hit_drop"),
            record_property=record_property,
        )
        reading = steady_reading(
            run,
            "cache_hit_rate",
            EVERYWHERE,
            since=origin,
            window_s=window(run, "cache_hit_drop", 3),
        )
        record_property("baseline_hit_rate", round(base, 4))
        check_level(run.policy, record_property, injected=(1 - miss) * base, measured=reading.value)


def test_ten_support_tickets(drill_run: DrillRun, record_property: RecordProperty) -> None:
    run = drill_run
    hybrid(run)
    tickets = int(run.policy.level("user_complaints_at"))  # exactly at "> 10": ten
    with injected(TicketSpike(count=tickets, url=run.tickets.url, journal=run.journal)):
        assert_no_decision(run, "user_complaints", observe_s=5.0, record_property=record_property)


def test_no_finding_no_corruption_or_exposure_decision(
    drill_run: DrillRun, record_property: RecordProperty
) -> None:
    """Integrity and security probes against a healthy hybrid deployment: nothing found."""
    run = drill_run
    with run.probes() as loops:
        integrity, security = loops["integrity"], loops["security"]
        hybrid(run)
        assert_no_decision(run, "data_corruption", observe_s=8.0, record_property=record_property)
        assert_no_decision(run, "security_exposure", observe_s=0.5, record_property=lambda *a: None)
        record_property("probe_runs", integrity.runs + security.runs)
        assert integrity.runs >= 5 and security.runs >= 5
        assert integrity.found == 0 and security.found == 0
