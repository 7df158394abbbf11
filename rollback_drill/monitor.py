"""The monitor: live signals in, the policy's decisions out, about once a second.

:class:`LiveSource` answers the evaluator's readings (``rollback_drill.metrics`` names) from the
load generator's record store, the signal collectors and the drill's probes (integrity and
security findings). :class:`Monitor` ticks the evaluator on a thread, keeps every decision
with its wall-clock time, journals it, and lets a drill wait for the first decision of a kind.

A request-based reading (error rate, P95, ...) counts the load's requests still unanswered
past their deadline as timeouts from that deadline on (``records.Outstanding``): a stack that
stops answering fills ``service_unavailable``'s window with failures within seconds, not after
the client's 10-s timeout.

Clocks: the record store and the evaluator use wall-clock epoch seconds; the collectors use
monotonic seconds, converted through their shared :class:`~rollback_drill.signals.series.Clock`
with one mapping (:class:`~rollback_drill.signals.series.Anchor`) per tick time, taken afresh
(the wall clock may run at another rate than the monotonic one: NTP slew) and kept by a
recording so that its replay maps the tick's windows the same way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from rollback_drill.baseline import Baseline
from rollback_drill.decisions import Decision, Reading
from rollback_drill.evaluator import Evaluator, RuleStatus
from rollback_drill.journal import Journal
from rollback_drill.metrics import Metric, Scope, ScopeKind
from rollback_drill.policy import Policy
from rollback_drill.records import RecordStore
from rollback_drill.signals.app_metrics import AppMetricsCollector
from rollback_drill.signals.connection_failures import FAILED, db_failure_share, redis_failures
from rollback_drill.signals.docker_events import DockerEventsCollector
from rollback_drill.signals.docker_stats import DockerStatsCollector
from rollback_drill.signals.postgres_log import PostgresLogCollector
from rollback_drill.signals.redis_info import RedisInfoCollector
from rollback_drill.signals.series import DEFAULT_CLOCK, Anchor, Clock
from rollback_drill.signals.tickets import TicketCollector
from rollback_drill.target import Target
from rollback_drill.wait import wait_for

ERROR_OUTCOMES = FAILED  # 5xx, refused or reset connection, timeout
NO_DATA = Reading(None, 0)
MIN_SAMPLED_WINDOW_S = 3.0  # the collectors sample once a second
ANCHORS_KEPT = 16  # the tick times whose clock mapping a source keeps (one a tick is read)


@dataclass
class Findings:
    """Timestamped results of the drill's own probes (integrity checks, security probe)."""

    runs: list[tuple[float, int]] = field(default_factory=list)  # (wall time, findings)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, found: int, wall: float | None = None) -> None:
        with self.lock:
            self.runs.append((time.time() if wall is None else wall, found))

    def reading(self, start: float, end: float) -> Reading:
        with self.lock:
            inside = [n for t, n in self.runs if start < t <= end]
        return Reading(float(sum(inside)), len(inside)) if inside else NO_DATA


@dataclass
class LiveSource:
    records: RecordStore
    events: DockerEventsCollector | None = None
    stats: DockerStatsCollector | None = None
    redis: RedisInfoCollector | None = None
    tickets: TicketCollector | None = None
    # the app's own /metrics (a target's ``signals.metrics``) and the names of its cache
    # counters (hits, misses): the cache hit rate is read from them when both are there,
    # else from Redis INFO's keyspace counters
    app: AppMetricsCollector | None = None
    cache_counters: tuple[str, str] | None = None
    integrity: Findings = field(default_factory=Findings)
    security: Findings = field(default_factory=Findings)
    clock: Clock = DEFAULT_CLOCK
    # Windows never reach back before this wall time: the monitor judges the deployed release,
    # not the deployment's own build-and-restart minutes (the plan: "within 2 hours of
    # deployment"); request rates and percentiles once half their window lies after it.
    # None while capturing the baseline.
    not_before: float | None = None
    # The policy's service scopes name the plan's roles (asgi, wsgi, ...): the target's own
    # service name of each (``Target.services``); a name that is not a role is taken as it is.
    services: Mapping[str, str] = field(default_factory=dict)
    # The app names the cause of a failed answer (a target's ``traffic.headers.
    # failure_cause``): DB and Redis connection failures are counted from it. False: from the
    # black-box sources (``signals.connection_failures``: PostgreSQL's log, Redis INFO, the
    # load's outcomes).
    cause_header: bool = True
    postgres: PostgresLogCollector | None = None
    # the clock mapping of each recent tick time (``now``): all of a tick's readings map their
    # windows through one, taken afresh for the tick (``anchor_at``) or as recorded (``pin``)
    _anchors: dict[float, Anchor] = field(default_factory=dict, init=False, repr=False)
    _anchors_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def anchor_at(self, now: float) -> Anchor:
        """The clock mapping of the readings at wall time ``now``: taken at the first one."""
        with self._anchors_lock:
            anchor = self._anchors.get(now)
            return self._keep(now, self.clock.anchor()) if anchor is None else anchor

    def pin(self, now: float, anchor: Anchor) -> None:
        """Map the readings at ``now`` through ``anchor`` (a replay: the recorded one)."""
        with self._anchors_lock:
            self._keep(now, anchor)

    def _keep(self, now: float, anchor: Anchor) -> Anchor:
        self._anchors[now] = anchor
        while len(self._anchors) > ANCHORS_KEPT:
            del self._anchors[next(iter(self._anchors))]  # the oldest tick's
        return anchor

    def _service(self, scope: Scope) -> str | None:
        return None if scope.name is None else self.services.get(scope.name, scope.name)

    def read(self, metric: str, scope: Scope, window_s: float, now: float) -> Reading:
        start = now - window_s
        m = Metric(metric)
        if self.not_before is not None:
            start = max(start, self.not_before)
            # A rate or a percentile over the first second after the deployment is not the
            # rule's reading: it is read once at least half of its window lies after it.
            if start >= now or (m in _RECORD_METRICS and now - start < window_s / 2):
                return NO_DATA
        if not self.cause_header and m in _BLACK_BOX:
            return self._black_box(m, scope, start, now)
        if m in _RECORD_METRICS:
            category = scope.name if scope.kind == ScopeKind.CATEGORY else None
            st = self.records.window(category, start, now)
            if not st.count:
                return NO_DATA
            value = _RECORD_METRICS[m](st)
            if value is None:
                return NO_DATA
            if m is Metric.P95_LATENCY:
                return Reading(value, st.count, st.p95_low_s, st.p95_high_s)
            return Reading(value, st.count)
        anchor = self.anchor_at(now)
        mono_start = self.clock.from_wall(start, anchor)
        mono_end = self.clock.from_wall(now, anchor)
        if m is Metric.INTEGRITY_VIOLATIONS:
            return self.integrity.reading(start, now)
        if m is Metric.SECURITY_FINDINGS:
            return self.security.reading(start, now)
        if m is Metric.CONTAINER_RESTARTS:
            if self.events is None or not self.events.running:
                return NO_DATA
            n = self.events.count("restarts", self._service(scope), mono_start, mono_end)
            return Reading(float(n), 1)
        if m is Metric.MEMORY_USAGE_RATIO:
            # a compressed window can be shorter than the sampling period: never read less
            # than MIN_SAMPLED_WINDOW_S, or some ticks would see no sample at all
            lo = min(mono_start, mono_end - MIN_SAMPLED_WINDOW_S)
            return self._memory(self._service(scope), lo, mono_end)
        if m is Metric.CACHE_HIT_RATE:
            return self._cache_hit_rate(mono_start, mono_end)
        if m is Metric.SUPPORT_TICKETS:
            if self.tickets is None:
                return NO_DATA
            return Reading(float(self.tickets.count(mono_start, mono_end)), 1)
        return NO_DATA

    def _black_box(self, m: Metric, scope: Scope, start: float, now: float) -> Reading:
        """A connection-failure metric without the app's cause header (the definitions:
        ``signals.connection_failures``)."""
        anchor = self.anchor_at(now)
        mono_start = self.clock.from_wall(start, anchor)
        mono_end = self.clock.from_wall(now, anchor)
        if m is Metric.DB_CONNECTION_FAILURE_RATE:
            if self.postgres is None or not self.postgres.running:
                return NO_DATA
            category = scope.name if scope.kind == ScopeKind.CATEGORY else None
            stats = self.records.window(category, start, now)
            got = db_failure_share(stats, self.postgres.count(mono_start, mono_end))
        else:
            if self.redis is None:
                return NO_DATA

            def failed(a: float, b: float) -> int:
                wall_a, wall_b = self.clock.to_wall(a, anchor), self.clock.to_wall(b, anchor)
                st = self.records.window(None, wall_a, wall_b)
                return sum(st.outcomes.get(o, 0) for o in FAILED)

            got = redis_failures(self.redis.series, mono_start, mono_end, failed)
        return NO_DATA if got is None else Reading(*got)

    def failure_source(self) -> str:
        """Where DB and Redis connection failures come from (reports, ``watch``)."""
        if self.cause_header:
            return "the app's failure-cause answer header"
        db = "PostgreSQL's log" if self.postgres is not None else "nothing (no PostgreSQL log)"
        redis = "Redis INFO" if self.redis is not None else "nothing (no Redis INFO)"
        return f"black-box: DB from {db} and the load, Redis from {redis} and the load"

    def _cache_hit_rate(self, start: float, end: float) -> Reading:
        if self.app is not None and self.cache_counters is not None:
            series, (hit, miss) = self.app.series, self.cache_counters
        elif self.redis is not None:
            series, (hit, miss) = self.redis.series, ("keyspace_hits", "keyspace_misses")
        else:
            return NO_DATA
        hits, misses = series.increase(hit, start, end), series.increase(miss, start, end)
        if hits is None or misses is None or hits + misses == 0:
            return NO_DATA
        return Reading(hits / (hits + misses), int(hits + misses))

    def cache_source(self) -> str | None:
        """Where the cache hit rate comes from (reports), None when nothing reads it."""
        if self.app is not None and self.cache_counters is not None:
            return "app metrics: " + " / ".join(self.cache_counters)
        return "Redis INFO keyspace_hits / keyspace_misses" if self.redis is not None else None

    def _memory(self, service: str | None, start: float, end: float) -> Reading:
        if self.stats is None or service is None:
            return NO_DATA
        worst: float | None = None
        samples = 0
        for ts in self.stats.series.select("memory_ratio", service=service):
            values = ts.values(start, end)
            if values:
                mean = sum(values) / len(values)
                worst = mean if worst is None else max(worst, mean)
                samples += len(values)
        return NO_DATA if worst is None else Reading(worst, samples)


def app_metrics_source(
    source: LiveSource, target: Target, base_url: str
) -> AppMetricsCollector | None:
    """The collector of the target's ``signals.metrics`` (not started), wired into ``source``;
    None when the target declares no metrics endpoint. Drills and ``watch`` both build it here.
    """
    metrics = target.signals.metrics
    if metrics is None:
        return None
    url = base_url.rstrip("/") + metrics.path
    source.app = AppMetricsCollector([url], interval=metrics.interval_s, clock=source.clock)
    source.cache_counters = metrics.cache_counters
    return source.app


def connection_failure_sources(
    source: LiveSource, target: Target, project: str | None
) -> PostgresLogCollector | None:
    """Wire the DB and Redis connection-failure readings of ``target`` into ``source``: from
    the app's failure-cause header when its traffic profile names one (None returned), else
    black-box -- the log collector of the Compose ``project``'s PostgreSQL returned (not
    started; None without a project or when the target's ``signals.postgres_log`` is false)
    and Redis INFO, which ``source.redis`` must hold.
    Drills and ``watch`` both wire it here."""
    source.cause_header = target.traffic.headers.failure_cause is not None
    if source.cause_header or project is None or not target.signals.postgres_log:
        return None
    source.postgres = PostgresLogCollector(project, target.services.postgres, clock=source.clock)
    return source.postgres


_BLACK_BOX = (Metric.DB_CONNECTION_FAILURE_RATE, Metric.REDIS_CONNECTION_FAILURES)
_RECORD_METRICS: dict[Metric, Callable[..., float | None]] = {
    Metric.ERROR_RATE: lambda st: st.share(*ERROR_OUTCOMES),
    Metric.DB_CONNECTION_FAILURE_RATE: lambda st: st.db_connection_failure_share,
    Metric.P95_LATENCY: lambda st: st.p95_s,
    Metric.AUTH_FAILURE_RATE: lambda st: st.auth_failure_share,
    Metric.REDIS_CONNECTION_FAILURES: lambda st: float(st.redis_connection_failures),
    Metric.WEBSOCKET_DISCONNECT_RATE: lambda st: st.ws_disconnect_share,
}


class TickRecorder(Protocol):
    """What records each tick's inputs as it runs it (``recording.Recorder``: a drill's
    replay). The monitor names what it calls, so the recorder depends on the monitor and not
    the other way round."""

    def tick(self, evaluator: Evaluator, source: LiveSource, now: float | None) -> list[Decision]:
        """Run ``evaluator``'s tick at ``now`` over ``source``, recording what it read."""
        ...


class Monitor:
    """Ticks an :class:`Evaluator` on a thread; decisions are kept, journaled and awaitable."""

    def __init__(
        self,
        policy: Policy,
        baseline: Baseline,
        source: LiveSource,
        journal: Journal | None = None,
        *,
        tick_s: float = 1.0,
        deployed_at: float | None = None,
    ) -> None:
        self.policy = policy
        self.source = source
        self.journal = journal
        self.tick_s = tick_s
        self.evaluator = Evaluator(policy, baseline, deployed_at=deployed_at)
        self.decisions: list[Decision] = []
        self.ticks = 0
        self.cpu_s = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.recorder: TickRecorder | None = None  # records each tick's inputs (a drill's replay)

    def tick(self, now: float | None = None) -> list[Decision]:
        cpu0 = time.thread_time()
        with self._lock:
            if self.recorder is not None:
                new = self.recorder.tick(self.evaluator, self.source, now)
            else:
                new = self.evaluator.tick(time.time() if now is None else now, self.source)
            self.decisions.extend(new)
            self.ticks += 1
            self.cpu_s += time.thread_time() - cpu0
        for d in new:
            if self.journal is not None:
                self.journal.event(
                    "decision",
                    d.trigger_id,
                    decision=d.kind.value,
                    action=d.action.value,
                    severity=d.severity.value,
                    measured_value=d.value,
                    threshold=d.threshold,
                    scope=str(d.scope),
                    message=d.message,
                    at=d.time,
                )
        return new

    def _run(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            try:
                self.tick()
            except BaseException as exc:  # surfaced by wait_for_decision / stop
                self.error = exc
                return
            next_tick += self.tick_s
            self._stop.wait(max(0.0, next_tick - time.monotonic()))

    def start(self) -> Monitor:
        self._thread = threading.Thread(target=self._run, name="monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.error is not None:
            raise self.error

    def __enter__(self) -> Monitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def status(self) -> tuple[RuleStatus, ...]:
        """Every rule's current value and state (for a live view), consistent with the ticks."""
        with self._lock:
            return self.evaluator.status()

    def snapshot(self) -> list[Decision]:
        with self._lock:
            return list(self.decisions)

    def wait_for_decision(
        self, accept: Callable[[Decision], bool], *, timeout_s: float, what: str
    ) -> Decision:
        """Poll the decisions until one is accepted; the timeout names the last decisions seen."""

        def first() -> Decision | None:
            if self.error is not None:
                raise self.error
            return next((d for d in self.snapshot() if accept(d)), None)

        found = wait_for(
            first,
            lambda d: d is not None,
            timeout_s=timeout_s,
            what=what,
            interval_s=0.2,
            hint=f"decisions so far: {[f'{d.trigger_id}:{d.kind}' for d in self.snapshot()]}",
        )
        assert found is not None
        return found
