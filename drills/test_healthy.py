"""A healthy deployment must not trip any trigger: the suite's false-positive guard."""

from __future__ import annotations

import time

import pytest

from rollback_drill.drill import DrillRun

pytestmark = [pytest.mark.full, pytest.mark.nightly]


def test_healthy_hybrid_deployment_fires_nothing(
    drill_run: DrillRun, record_property: pytest.RecordProperty
) -> None:
    run = drill_run
    baseline = run.capture_baseline()
    run.deploy("hybrid")
    monitor = run.start_monitor()
    observe_s = run.policy.scale(300)  # five plan minutes after the deployment
    deadline = time.monotonic() + observe_s
    while time.monotonic() < deadline:  # the observation period itself is what is measured
        time.sleep(1.0)
        assert monitor.error is None
    rollbacks = [d for d in monitor.snapshot() if d.is_rollback()]
    record_property("observed_s", round(observe_s, 1))
    record_property("requests", run.store.total)
    record_property("decisions", len(monitor.snapshot()))
    # Pre-hybrid cannot serve WebSockets: no baseline there is expected, and reported.
    unexpected = [p for p in baseline.problems() if "websocket" not in p]
    assert not unexpected, unexpected
    assert rollbacks == [], [d.message for d in rollbacks]
