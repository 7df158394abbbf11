"""LiveSource's judging start: windows never reach back before ``not_before``, and request
rates and percentiles are read only once half of their window lies after it."""

from __future__ import annotations

from rollback_drill.metrics import Metric, Scope
from rollback_drill.monitor import LiveSource
from rollback_drill.records import Outcome, RecordStore, RequestRecord

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
