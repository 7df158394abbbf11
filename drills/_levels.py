"""Levels: the slow release aimed at a multiple of the baseline P95, and a fault's level checked
against its aim -- by nginx's own access log for the P95 and error-rate faults, by the
monitor's reading for the others; the tolerances are the policy's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from rollback_drill.decisions import Reading
from rollback_drill.drill import DrillRun
from rollback_drill.errors import FaultError
from rollback_drill.faults import FaultyRelease, PauseCycle
from rollback_drill.faults import faulty_releases as releases
from rollback_drill.metrics import Metric, Scope
from rollback_drill.policy import Policy

from ._baselines import baseline_histogram, baseline_value, settled_baseline
from ._detection import sleep_until
from ._verdicts import RecordProperty


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
    """A release slowing exactly the policy's ``drills.slowed_share`` of ``category``'s
    requests by ``delay_ms`` (the P95 lands among them, about their 75th percentile): the
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
    share = run.policy.drills.slowed_share
    delay_ms = releases.p95_delay_ms(factor * base, hist, share=share)
    make = releases.slow_stream if category == "streaming" else releases.slow_crud
    fault = make(run.stack, delay_ms, share=share, deploy=run.deploy)
    return SlowRelease(fault, category, factor, base, hist, delay_ms)


# A pause cycle aimed at a P95 multiple (``faults.PauseCycle``; its docstring says why not a CPU
# quota). The share of the time frozen is fixed and the pause's length is the knob: the P95
# rise is about pause x (1 - 0.05 / share), growing with the pause and no cliff in between. The
# first pause is a part of that estimate (the level nears its aim from below, not past the
# threshold of the row's trigger); each window after it the pause is scaled by the rise still
# wanted over the rise read, at most halved or doubled per step -- by the square root of that
# once the reading is within the policy's tolerance of the aim, where a window's own noise is
# as large as the error (on the reference stack one pause read 2.27x and 3.08x in consecutive
# windows) -- until the load's own P95 holds the aim (within half the tolerance) over two
# windows in a row. Measured: 4 windows on the notes stack, 10 on the reference (12 allowed).
PAUSE_SHARE = 0.2  # of the time frozen: the P95 sits ~3/4 into a pause (1 - 0.05 / 0.2)
PAUSE_APPROACH = 0.6  # the first pause: this part of the estimate
PAUSE_MAX_MS = 1000.0  # a frozen second meets the load's deadline: errors, not latency
AIM_WINDOWS = 12  # windows read before the aim is given up


def pause_estimate_ms(rise_s: float) -> float:
    """The pause (ms) whose cycle at ``PAUSE_SHARE`` adds ``rise_s`` to the P95."""
    return 1000.0 * rise_s / (1.0 - 0.05 / PAUSE_SHARE)


def wait_p95_settled(run: DrillRun, category: str, *, timeout_s: float = 60.0) -> None:
    """Until one step (half the P95 rule's window) of the load's ``category`` P95 reads under
    the degradation rule's multiple of its baseline: a freshly deployed WSGI server's warm-up
    (3.6x for the first seconds on the example stack) is not the fault's level."""
    scope = Scope.category(category)
    base = baseline_value(run, "p95_pre_hybrid", scope)
    limit = run.policy.rule("performance_degradation").condition.threshold
    assert limit is not None
    step_s = run.policy.scale(run.policy.rule("wsgi_p95_latency").window_s) / 2
    deadline = time.time() + timeout_s
    while True:
        sleep_until(time.time() + step_s)
        reading = run.source.read(Metric.P95_LATENCY, scope, step_s, time.time())
        level = (reading.value or 0.0) / base
        if reading.value is not None and level < limit:
            run.mark("p95 settled after the deployment", level=round(level, 3))
            return
        if time.time() >= deadline:
            raise FaultError(
                f"the {category} P95 stayed at {level:.2f}x its baseline for {timeout_s:.0f} s "
                f"after the deployment: no fault can be aimed from it"
            )


def first_pause_ms(run: DrillRun, aimed: float, category: str) -> float:
    """The pause a cycle starts with to aim ``category``'s P95 at ``aimed`` x its baseline."""
    base = baseline_value(run, "p95_pre_hybrid", Scope.category(category))
    return PAUSE_APPROACH * pause_estimate_ms((aimed - 1.0) * base)


def aim_pause_cycle(
    run: DrillRun,
    fault: PauseCycle,
    aimed: float,
    *,
    fires_at: float,
    category: str,
    record_property: RecordProperty,
) -> float:
    """Tune ``fault``'s pause until the load's ``category`` P95 reads ``aimed`` x its
    baseline, within half the policy's P95 tolerance either side, in two consecutive windows of
    the P95 rule, each read once it holds only data from the pause in force.

    Returns the drill's origin: when the pause that held went live -- or, when the first pause
    that read at or past ``fires_at`` (the threshold of the row's trigger) did, if that was
    earlier: a step on the way that overshot the aim is a fault past the threshold
    too, and the monitor may decide on it (on the notes stack: pauses of 33, 66, 89 and 68 ms;
    the 89 ms one read past 2x and the monitor decided 6 s after it, a second before the 68 ms
    one went live). :class:`FaultError` when the pause would pass ``PAUSE_MAX_MS`` or
    ``AIM_WINDOWS`` windows pass first."""
    scope = Scope.category(category)
    base = baseline_value(run, "p95_pre_hybrid", scope)
    window_s = run.policy.scale(run.policy.rule("wsgi_p95_latency").window_s)
    tolerance = run.policy.drills.level_tolerance.p95_relative * aimed
    low, high = aimed - tolerance / 2, aimed + tolerance / 2
    live = fault.live_at or time.time()
    past: float | None = None  # when the first pause read at or past ``fires_at`` went live
    held = 0
    steps: list[tuple[float, float]] = []

    def give_up(why: str) -> FaultError:
        record_property("pause_steps", steps)
        return FaultError(
            f"a pause cycle did not put the {category} P95 at {aimed:g}x its baseline: {why} "
            f"(steps: pause ms, level: {steps})"
        )

    while True:
        sleep_until(live + (held + 1) * window_s + 1.0)
        reading = run.source.read(Metric.P95_LATENCY, scope, window_s, time.time())
        level = (reading.value or 0.0) / base
        steps.append((round(fault.pause_ms, 1), round(level, 3)))
        if level >= fires_at and past is None:
            past = live
        if low <= level <= high:
            held += 1
            if held == 2:
                break
            continue
        if len(steps) >= AIM_WINDOWS:
            raise give_up(f"{AIM_WINDOWS} windows read")
        held = 0
        rise = max(level - 1.0, 0.05)  # a reading at or under the baseline: double the pause
        step = min(2.0, max(0.5, (aimed - 1.0) / rise))
        if abs(level - aimed) <= tolerance:  # near: half the step (geometric), not the noise's
            step **= 0.5
        pause = fault.pause_ms * step
        if pause > PAUSE_MAX_MS:
            raise give_up(f"the pause would pass {PAUSE_MAX_MS:.0f} ms")
        live = fault.set_pause(pause)
    record_property("pause_steps", steps)
    record_property("pause_ms", round(fault.pause_ms, 1))
    record_property("pause_period_ms", round(fault.period_ms, 1))
    record_property("frozen_share", fault.frozen_share())
    run.mark("pause on its aim", pause_ms=round(fault.pause_ms, 1), level=steps[-1][1])
    if past is not None and past < live:
        record_property("origin", "the first pause past the threshold, before the aim held")
        return past
    return live


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

    ``metric``: ``p95`` or ``error_rate`` (the share of 5xx answers). The P95 aim is a multiple
    of the baseline P95 the monitor judges against (the load's, client side); nginx times the
    server side only, so its own ratio reads higher wherever the client adds latency (on a
    loaded host: 4.7x nginx vs 3.1x generator for a 2.5x aim). What nginx measures is the
    fault's effect: how much the category's P95 rose over its P95 in the baseline window (the
    entries ``DrillRun.capture_baseline`` kept); the measured level is that rise on the aim's
    scale, ``1 + rise / baseline``. nginx's own ratio is recorded beside it.

    Read in ``windows`` consecutive windows of ``window_s`` after ``since``; the median window
    decides. Recorded: ``aimed_level``, ``measured_level``
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
    nginx_ratio: list[float] = []  # nginx's P95 over its own baseline P95
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
            measured.append(1.0 + (value - base_nginx) / base_gen)
            nginx_ratio.append(value / base_nginx)
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
        record_property("nginx_own_ratio_windows", [round(x, 4) for x in nginx_ratio])
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
