"""One drill per trigger of the plan: a healthy pre-hybrid stack under load, its baseline, then
the hybrid deployment with a defect (or a fault injected into the deployed hybrid), and the
monitor must name the trigger with the plan's severity and action within its budget.

JUnit properties of each drill: ``trigger``, ``decision``, ``severity``, ``measured_value``,
``threshold``, ``time_to_detect_s`` (and ``injected_level`` / ``steady_value`` where the fault
sets a level). Budgets: the rule's window at the run's time scale plus slack, or the fault's
own pace (restarts, a sustained memory reading).
"""

from __future__ import annotations

import time

import pytest

from rollback_drill.drill import DrillRun
from rollback_drill.faults import (
    CrashProcess,
    PostgresConnectionExhaustion,
    RedisConnectionExhaustion,
    StopContainers,
    TicketSpike,
    injected,
)
from rollback_drill.faults import faulty_releases as releases
from rollback_drill.metrics import Scope
from rollback_drill.traffic import Category

from ._support import (
    RecordProperty,
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
STREAMING = Scope.category("streaming")
WEBSOCKET = Scope.category("websocket")


# ---- critical ------------------------------------------------------------------------------


def test_error_rate(drill_run: DrillRun, record_property: RecordProperty) -> None:
    """A release whose new CRUD code fails 20 % of requests: error rate > 10 % on crud."""
    run, share = drill_run, drill_run.policy.level("error_rate_trigger")
    run.capture_baseline()
    fault = releases.failing_share(run.stack, share, kind="error", deploy=run.deploy)
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


def test_service_unavailable(drill_run: DrillRun, record_property: RecordProperty) -> None:
    """A release whose nginx config passes ``nginx -t`` but proxies to a dead port."""
    run = drill_run
    run.capture_baseline()
    fault = releases.broken_nginx(run.stack, deploy=run.deploy)
    with faulty_release(run, fault):  # nginx answers 502 itself: no release header to watch
        detect(
            run,
            "service_unavailable",
            origin=origin_of(run, fault),
            budget_s=run.policy.detect_budget_s("service_unavailable"),
            record_property=record_property,
        )


def test_service_unavailable_nginx_stopped(
    drill_run: DrillRun, record_property: RecordProperty
) -> None:
    """Infrastructure: nginx, the only entry point, stopped after the hybrid deployment."""
    run = drill_run
    hybrid(run)
    with injected(StopContainers(run.stack, run.stack.target.services.nginx)) as fault:
        detect(
            run,
            "service_unavailable",
            origin=origin_of(run, fault),
            budget_s=run.policy.detect_budget_s("service_unavailable"),
            record_property=record_property,
        )


def test_data_corruption(drill_run: DrillRun, record_property: RecordProperty) -> None:
    """A release whose data migration rewrites session titles behind the checksums' back."""
    run = drill_run
    with run.probes() as loops:
        integrity = loops["integrity"]
        run.capture_baseline()
        assert integrity.found == 0, "corruption found before the faulty release"
        fault = releases.corrupting_migration(run.stack, deploy=run.deploy)
        with faulty_release(run, fault):
            detect(
                run,
                "data_corruption",
                origin=origin_of(run, fault),
                budget_s=run.policy.detect_budget_s("data_corruption"),
                record_property=record_property,
            )


def test_security_exposure(drill_run: DrillRun, record_property: RecordProperty) -> None:
    """A release deployed with ``DJANGO_DEBUG=1``: technical pages for anonymous clients."""
    run = drill_run
    with run.probes() as loops:
        security = loops["security"]
        run.capture_baseline()
        assert security.found == 0, f"security findings before the release: {security.errors}"
        fault = releases.debug_exposed(run.stack, deploy=run.deploy)
        with faulty_release(run, fault):
            detect(
                run,
                "security_exposure",
                origin=origin_of(run, fault),
                budget_s=run.policy.detect_budget_s("security_exposure"),
                record_property=record_property,
            )
            record_property("findings", "; ".join(getattr(security.probe, "last", [])))


def test_db_connection_failures(drill_run: DrillRun, record_property: RecordProperty) -> None:
    """Infrastructure: every PostgreSQL slot taken and the app's backends terminated."""
    run = drill_run
    hybrid(run)
    with injected(PostgresConnectionExhaustion(run.stack)) as fault:
        detect(
            run,
            "db_connection_failures",
            origin=origin_of(run, fault),
            budget_s=run.policy.detect_budget_s("db_connection_failures"),
            record_property=record_property,
        )


# ---- high ----------------------------------------------------------------------------------


def test_wsgi_p95_latency(drill_run: DrillRun, record_property: RecordProperty) -> None:
    """A release whose new CRUD code path (20 % of requests) makes a slow blocking call: P95
    2.5x the pre-hybrid baseline."""
    run = drill_run
    slow = slow_release(run, "crud", run.policy.level("wsgi_p95_trigger"))
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


def test_asgi_restarts(drill_run: DrillRun, record_property: RecordProperty) -> None:
    """A release whose WebSocket code aborts the ASGI process: the restart policy loops."""
    run = drill_run
    run.capture_baseline()
    fault = releases.crashing_asgi(run.stack, deploy=run.deploy)
    with faulty_release(run, fault, timeout_s=60):
        detect(
            run,
            "asgi_restarts",
            origin=origin_of(run, fault),
            budget_s=run.policy.detect_budget_s("asgi_restarts", "asgi_restarts_release"),
            record_property=record_property,
        )


def test_asgi_restarts_process_killed(drill_run: DrillRun, record_property: RecordProperty) -> None:
    """Infrastructure: the ASGI server's process SIGKILLed six times from the host."""
    run = drill_run
    hybrid(run)
    kills = int(run.policy.level("asgi_restarts_trigger"))  # "> 5 restarts": six
    fault = CrashProcess(run.stack, run.stack.target.services.asgi, times=kills)
    with injected(fault):
        detect(
            run,
            "asgi_restarts",
            origin=origin_of(run, fault),
            budget_s=run.policy.detect_budget_s("asgi_restarts", "asgi_restarts_killed"),
            record_property=record_property,
        )


def test_memory_leak(drill_run: DrillRun, record_property: RecordProperty) -> None:
    """A release whose ASGI response cache grows to 96.5 % of the memory limit and stays."""
    run, cap = drill_run, drill_run.policy.level("memory_leak_trigger")
    run.capture_baseline()
    fault = releases.leaky_asgi(run.stack, cap_ratio=cap, deploy=run.deploy)
    with faulty_release(run, fault, timeout_s=60):
        rule = run.policy.rule("memory_leak")
        asgi = Scope.service("asgi")  # the policy's scopes name the roles
        budget = run.policy.detect_budget_s("memory_leak", "memory_leak_release")  # + ramp
        detect(
            run,
            "memory_leak",
            origin=origin_of(run, fault),
            scope=asgi,
            budget_s=budget,
            record_property=record_property,
        )
        reading = run.source.read(rule.metric, asgi, window(run, "memory_leak"), time.time())
        check_level(run.policy, record_property, injected=cap, measured=reading.value)


def test_auth_failures(drill_run: DrillRun, record_property: RecordProperty) -> None:
    """A release whose ASGI side reads sessions under another key prefix than WSGI writes."""
    run = drill_run
    run.capture_baseline()
    fault = releases.session_mismatch(run.stack, deploy=run.deploy)
    with faulty_release(run, fault, "streaming", "websocket") as first:
        origin = origin_of(run, fault, first.at)
        detect(
            run,
            "auth_failures",
            origin=origin,
            budget_s=run.policy.detect_budget_s("auth_failures"),
            record_property=record_property,
        )
        # every streaming and WebSocket request fails: their share of the mix
        assert run.load is not None
        mix = run.load.generator.mix
        expected = mix.share(Category.STREAMING) + mix.share(Category.WEBSOCKET)
        reading = steady_reading(
            run,
            "auth_failure_rate",
            Scope.everywhere(),
            since=origin,
            window_s=window(run, "auth_failures"),
        )
        record_property("expected_share", round(expected, 4))
        record_property("steady_value", None if reading.value is None else round(reading.value, 4))


def test_redis_connection_failures(drill_run: DrillRun, record_property: RecordProperty) -> None:
    """Infrastructure: Redis ``maxclients`` down to the suite's own connections, app killed."""
    run = drill_run
    hybrid(run)
    with injected(RedisConnectionExhaustion(run.stack)) as fault:
        detect(
            run,
            "redis_connection_failures",
            origin=origin_of(run, fault),
            budget_s=run.policy.detect_budget_s("redis_connection_failures"),
            record_property=record_property,
        )


# ---- medium --------------------------------------------------------------------------------


def test_performance_degradation(drill_run: DrillRun, record_property: RecordProperty) -> None:
    """A release whose new async streaming path (20 % of streams) is slow: streaming P95 2.5x
    its baseline. ASGI categories have no P95 rollback rung in the plan: 'evaluate'."""
    run = drill_run
    slow = slow_release(run, "streaming", run.policy.level("performance_degradation_trigger"))
    with faulty_release(run, slow.fault, "streaming") as first:
        origin = origin_of(run, slow.fault, first.at)
        detect(
            run,
            "performance_degradation",
            origin=origin,
            scope=STREAMING,
            budget_s=run.policy.detect_budget_s("performance_degradation"),
            record_property=record_property,
        )
        check_aimed_level(
            run,
            "p95",
            slow.category,
            slow.factor,
            since=origin,
            window_s=window(run, "performance_degradation", 2),
            record_property=record_property,
        )


def test_websocket_disconnects(drill_run: DrillRun, record_property: RecordProperty) -> None:
    """A release that closes half of the WebSockets after the first reply."""
    run, share = drill_run, drill_run.policy.level("websocket_disconnects_trigger")
    run.capture_baseline()
    fault = releases.ws_drop(run.stack, share, deploy=run.deploy)
    with faulty_release(run, fault, "websocket") as first:
        origin = origin_of(run, fault, first.at)
        detect(
            run,
            "websocket_disconnects",
            origin=origin,
            budget_s=run.policy.detect_budget_s("websocket_disconnects"),
            record_property=record_property,
        )
        reading = steady_reading(
            run,
            "websocket_disconnect_rate",
            WEBSOCKET,
            since=origin,
            window_s=window(run, "websocket_disconnects", 3),
        )
        outcomes = run.store.window(
            "websocket", time.time() - window(run, "websocket_disconnects", 3), time.time()
        ).outcomes
        record_property("websocket_outcomes", {str(k): v for k, v in outcomes.items()})
        check_level(run.policy, record_property, injected=share, measured=reading.value)


def test_cache_hit_drop(drill_run: DrillRun, record_property: RecordProperty) -> None:
    """A release whose cache key scheme misses on 80 % of the model catalogue's lookups."""
    run, miss = drill_run, 1 - drill_run.policy.level("cache_hit_drop_trigger")
    record_property("cache_hit_source", run.source.cache_source())
    run.capture_baseline()
    base = baseline_value(run, "cache_hit_pre_hybrid", Scope.everywhere())
    fault = releases.cache_miss(run.stack, miss, deploy=run.deploy)
    with faulty_release(run, fault, "crud") as first:
        origin = origin_of(run, fault, first.at)
        detect(
            run,
            "cache_hit_drop",
            origin=origin,
            budget_s=run.policy.detect_budget_s("cache_hit_drop"),
            record_property=record_property,
        )
        reading = steady_reading(
            run,
            "cache_hit_rate",
            Scope.everywhere(),
            since=origin,
            window_s=window(run, "cache_hit_drop"),
        )
        record_property("baseline_hit_rate", round(base, 4))
        check_level(run.policy, record_property, injected=(1 - miss) * base, measured=reading.value)


def test_user_complaints(drill_run: DrillRun, record_property: RecordProperty) -> None:
    """Eleven support tickets filed through the suite's ticket endpoint after the deploy."""
    run = drill_run
    hybrid(run)
    tickets = int(run.policy.level("user_complaints_trigger"))  # "> 10": eleven
    spike = TicketSpike(count=tickets, url=run.tickets.url, spacing_s=0.05, journal=run.journal)
    with injected(spike):
        detect(
            run,
            "user_complaints",
            origin=origin_of(run, spike),
            budget_s=run.policy.detect_budget_s("user_complaints"),
            record_property=record_property,
        )
