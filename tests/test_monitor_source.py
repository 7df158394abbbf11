"""LiveSource's judging start: windows never reach back before ``not_before``, and request
rates and percentiles are read only once half of their window lies after it."""

from __future__ import annotations

from pathlib import Path

from rollback_drill.metrics import Metric, Scope
from rollback_drill.monitor import LiveSource
from rollback_drill.records import Outcome, RecordStore, RequestRecord
from rollback_drill.signals.docker_stats import DockerStatsCollector
from rollback_drill.signals.series import Anchor
from rollback_drill.signals.tickets import TicketCollector
from tests.slew import HOUR_S, SlewingTime

T0 = 1_700_000_000.0
CRUD = Scope.category("crud")


def _store() -> RecordStore:
    store = RecordStore()
    for i in range(200):  # 20 requests a second for 10 s, the first 5 s all failing
        ended = T0 + i * 0.05
        outcome = Outcome.SERVER_ERROR if ended < T0 + 5 else Outcome.OK
        store.append(
            RequestRecord(
                "crud", ended - 0.01, ended - 0.01, ended, 0.01, outcome, 200, "wsgi", "v"
            )
        )
    return store


def test_without_not_before_the_whole_window_is_read() -> None:
    source = LiveSource(_store())
    reading = source.read(Metric.ERROR_RATE, CRUD, 6.0, T0 + 6.0)
    assert reading.samples == 120 and reading.value is not None and reading.value > 0.8


def test_nothing_before_not_before_is_read() -> None:
    source = LiveSource(_store(), not_before=T0 + 5.0)
    reading = source.read(Metric.ERROR_RATE, CRUD, 6.0, T0 + 9.0)
    assert reading.value == 0.0 and reading.samples == 80


def test_a_rate_is_not_read_over_less_than_half_its_window() -> None:
    source = LiveSource(_store(), not_before=T0 + 5.0)
    assert not source.read(Metric.ERROR_RATE, CRUD, 6.0, T0 + 7.9).has_value
    assert not source.read(Metric.P95_LATENCY, CRUD, 6.0, T0 + 7.9).has_value
    assert source.read(Metric.ERROR_RATE, CRUD, 6.0, T0 + 8.0).has_value


def test_the_cache_hit_rate_is_the_apps_own_where_the_target_names_its_counters() -> None:
    """The reference target names its app's cache counters: the monitor reads them (drills
    and ``watch`` alike), not Redis INFO's keyspace counters."""
    import time

    import httpx
    from paths import REFERENCE_TARGET

    from rollback_drill.monitor import app_metrics_source
    from rollback_drill.signals.app_metrics import AppMetricsCollector
    from rollback_drill.target import load_target

    target = load_target(REFERENCE_TARGET)
    source = LiveSource(RecordStore())
    assert source.read(Metric.CACHE_HIT_RATE, Scope.everywhere(), 10, time.time()).value is None
    app = app_metrics_source(source, target, "http://127.0.0.1:8080")
    assert app is not None and app.targets == ["http://127.0.0.1:8080/metrics"]
    assert source.cache_counters == ("app_cache_hits_total", "app_cache_misses_total")
    pages = iter([(10, 2), (18, 10)])

    def metrics(request: httpx.Request) -> httpx.Response:
        hits, misses = next(pages)
        text = f"app_cache_hits_total {hits}\napp_cache_misses_total {misses}\n"
        return httpx.Response(200, text=text)

    source.app = AppMetricsCollector(
        app.targets, clock=source.clock, transport=httpx.MockTransport(metrics)
    )
    assert source.app.scrape(app.targets[0]) and source.app.scrape(app.targets[0])
    reading = source.read(Metric.CACHE_HIT_RATE, Scope.everywhere(), 10, time.time() + 0.01)
    assert (reading.value, reading.samples) == (0.5, 16)
    assert source.cache_source() == "app metrics: app_cache_hits_total / app_cache_misses_total"


def test_the_windows_end_at_the_collectors_now_after_an_hour_of_slew(tmp_path: Path) -> None:
    """The wall clock 0.5 % fast, the monitor an hour old: a reading at wall ``now`` reads the
    memory samples of its last 10 s and a ticket stamped now (the mapping taken once at the
    start put the window 18 s into the monotonic future: no memory sample at all)."""
    time_ = SlewingTime()
    clock = time_.clock()
    stats = DockerStatsCollector("fake", clock=clock)
    tickets = TicketCollector(tmp_path / "tickets.jsonl", http=False, clock=clock)
    source = LiveSource(
        RecordStore(), stats=stats, tickets=tickets, clock=clock, services={"asgi": "fake-asgi"}
    )
    time_.advance(HOUR_S)
    for _ in range(20):  # a sample a second, the last half a second ago
        time_.advance(1.0)
        stats.series.append("memory_ratio", clock.now(), 0.5, service="fake-asgi", container="a")
    time_.advance(0.5)
    assert tickets.add({"id": "now", "time": time_.wall()}) == "accepted"
    now = time_.wall()
    memory = source.read(Metric.MEMORY_USAGE_RATIO, Scope.service("asgi"), 10.0, now)
    assert (memory.value, memory.samples) == (0.5, 10)
    assert source.read(Metric.SUPPORT_TICKETS, Scope.everywhere(), HOUR_S, now).value == 1.0


def test_a_ticks_readings_share_one_clock_mapping_and_a_pinned_one_is_used() -> None:
    time_ = SlewingTime()
    source = LiveSource(RecordStore(), clock=time_.clock())
    first = source.anchor_at(T0)
    time_.advance(1.0)
    assert source.anchor_at(T0) is first  # the same tick
    assert source.anchor_at(T0 + 1.0) == Anchor(time_.mono, time_.wall())  # taken afresh
    source.pin(T0 + 2.0, Anchor(1.0, 2.0))
    assert source.anchor_at(T0 + 2.0) == Anchor(1.0, 2.0)
