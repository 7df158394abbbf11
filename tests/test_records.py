"""The record store: classification, windows, percentiles (against HdrHistogram itself),
series, compaction, JSON-lines journal, thread safety."""

from __future__ import annotations

import dataclasses
import random
import threading
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram

from rollback_drill.records import (
    Outcome,
    Outstanding,
    RecordStore,
    RequestRecord,
    classify_handshake,
    classify_status,
    read_records,
)

T0 = 1_700_000_000.0


def rec(
    ended: float,
    latency_s: float = 0.01,
    outcome: Outcome = Outcome.OK,
    category: str = "crud",
    cause: str | None = None,
    status: int | None = 200,
) -> RequestRecord:
    scheduled = ended - latency_s
    return RequestRecord(
        category, scheduled, scheduled, ended, latency_s, outcome, status, "wsgi", "v1", cause
    )


@pytest.mark.parametrize(
    ("status", "authenticated", "expected"),
    [
        (200, True, Outcome.OK),
        (201, False, Outcome.OK),
        (302, True, Outcome.OK),
        (401, True, Outcome.AUTH_FAILURE),
        (403, True, Outcome.AUTH_FAILURE),
        (401, False, Outcome.CLIENT_ERROR),
        (404, True, Outcome.CLIENT_ERROR),
        (429, True, Outcome.CLIENT_ERROR),
        (500, True, Outcome.SERVER_ERROR),
        (503, False, Outcome.SERVER_ERROR),
    ],
)
def test_classify_status(status: int, authenticated: bool, expected: Outcome) -> None:
    assert classify_status(status, authenticated=authenticated) is expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (302, Outcome.CLIENT_ERROR),  # redirected (to a login page): the socket did not open
        (200, Outcome.CLIENT_ERROR),
        (404, Outcome.CLIENT_ERROR),
        (403, Outcome.AUTH_FAILURE),
        (502, Outcome.SERVER_ERROR),
    ],
)
def test_a_refused_websocket_handshake_is_never_ok(status: int, expected: Outcome) -> None:
    assert classify_handshake(status) is expected


def test_window_counts_shares_and_causes() -> None:
    store = RecordStore()
    for i in range(80):
        store.append(rec(T0 + i * 0.1))  # 8 s of ok
    for i in range(10):
        store.append(rec(T0 + 2 + i * 0.1, outcome=Outcome.SERVER_ERROR, cause="db-connection"))
    for i in range(5):
        store.append(rec(T0 + 3 + i * 0.1, outcome=Outcome.AUTH_FAILURE, status=401))
    for _ in range(4):
        store.append(rec(T0 + 4, outcome=Outcome.SERVER_ERROR, cause="redis-connection"))
    store.append(rec(T0 + 5, outcome=Outcome.WS_DISCONNECT, category="websocket", status=101))

    w = store.window("crud", T0, T0 + 10)
    assert w.count == 99
    assert w.outcomes == {Outcome.OK: 80, Outcome.SERVER_ERROR: 14, Outcome.AUTH_FAILURE: 5}
    assert w.error_share == pytest.approx(19 / 99)
    assert w.auth_failure_share == pytest.approx(5 / 99)
    assert w.db_connection_failures == 10
    assert w.db_connection_failure_share == pytest.approx(10 / 99)
    assert w.redis_connection_failures == 4
    both = store.window(None, T0, T0 + 10)
    assert both.count == 100 and both.outcomes[Outcome.WS_DISCONNECT] == 1
    ws = store.window("websocket", T0, T0 + 10)
    assert ws.ws_disconnect_share == 1.0
    # window boundaries are by completion time, half-open, whole seconds
    assert store.window("crud", T0, T0 + 1).count == 10
    assert store.window("crud", T0 + 2, T0 + 3).count == 20


def test_empty_window() -> None:
    w = RecordStore().window(None, T0, T0 + 60)
    assert w.count == 0 and w.p95_s is None and w.error_share == 0.0 and w.outcomes == {}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_percentiles_match_hdrhistogram(seed: int) -> None:
    rng = random.Random(seed)
    store = RecordStore()
    hist = HdrHistogram(1, 3_600_000_000, 3)
    for i in range(5000):
        latency = rng.lognormvariate(-3, 1)  # ~50 ms median, long tail
        store.append(rec(T0 + i * 0.01, latency_s=latency))
        hist.record_value(int(latency * 1_000_000))
    w = store.window(None, T0, T0 + 100)
    assert w.p50_s == hist.get_value_at_percentile(50) / 1e6
    assert w.p95_s == hist.get_value_at_percentile(95) / 1e6
    assert w.p99_s == hist.get_value_at_percentile(99) / 1e6
    assert w.max_s == hist.get_max_value() / 1e6


def test_percentiles_of_a_known_distribution_are_within_a_tenth_of_a_percent() -> None:
    store = RecordStore()
    for ms in range(1, 1001):  # 1..1000 ms, one each
        store.append(rec(T0 + ms / 1000, latency_s=ms / 1000))
    w = store.window(None, T0, T0 + 2)
    assert w.p50_s == pytest.approx(0.500, rel=1e-3)
    assert w.p95_s == pytest.approx(0.950, rel=1e-3)
    assert w.p99_s == pytest.approx(0.990, rel=1e-3)
    assert w.max_s == pytest.approx(1.000, rel=1e-3)


def test_series_has_one_point_per_second() -> None:
    store = RecordStore()
    for second in range(5):
        for _ in range(second + 1):
            store.append(rec(T0 + second + 0.5, latency_s=0.1 * (second + 1)))
    series = store.series("crud", T0, T0 + 5)
    assert [p.count for p in series] == [1, 2, 3, 4, 5]
    assert [p.start for p in series] == [T0 + s for s in range(5)]
    assert [round(p.p95_s or 0, 2) for p in series] == [0.1, 0.2, 0.3, 0.4, 0.5]


def test_old_buckets_are_compacted_to_minutes_and_memory_is_bounded() -> None:
    store = RecordStore(fine_retention_s=120)
    for second in range(600):
        for n in range(20):
            store.append(rec(T0 + second + n / 20, latency_s=0.001 * (1 + n % 5)))
    fine = sum(len(b) for b in store._fine.values())
    coarse = sum(len(b) for b in store._coarse.values())
    assert fine <= 120 + 60 and coarse <= 600 // 60
    # every record is still counted, with minute resolution for the old part
    assert store.window(None, T0, T0 + 600).count == 12_000
    assert store.total == 12_000
    # histograms stay sparse: 5 distinct latencies, whatever the number of requests
    assert all(len(b.hist) <= 5 for b in store._coarse["crud"].values())


def test_journal_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    store = RecordStore(journal=path)
    originals = [rec(T0 + i, outcome=o) for i, o in enumerate(Outcome)]
    store.extend(originals)
    store.close()
    loaded = list(read_records(path))
    assert loaded == originals
    replayed = RecordStore()
    replayed.extend(loaded)
    assert replayed.window(None, T0, T0 + 100) == store.window(None, T0, T0 + 100)


def test_append_is_thread_safe() -> None:
    store = RecordStore()

    def writer(offset: int) -> None:
        for i in range(2000):
            store.append(rec(T0 + (i % 10) + offset * 0.01))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        store.window(None, T0, T0 + 10)  # concurrent reads
    assert store.window(None, T0, T0 + 10).count == 8000


def test_histogram_of_a_window_is_ascending_and_counts_every_record() -> None:
    store = RecordStore()
    for i, ms in enumerate((5, 5, 7, 40)):
        store.append(rec(T0 + 0.1 + i * 0.1, ms / 1000))
    hist = store.histogram("crud", T0, T0 + 1)
    assert sum(n for _, n in hist) == 4
    assert [round(v * 1000, 1) for v, _ in hist] == [5.0, 7.0, 40.0]
    assert [n for _, n in hist] == [2, 1, 1]
    assert store.histogram("crud", T0 + 100, T0 + 101) == []


def test_histogram_splits_the_records_a_release_marked_as_slowed(tmp_path: Path) -> None:
    store = RecordStore(journal=tmp_path / "records.jsonl")
    marks = ((5, None), (5, None), (45, 0.040), (7, None), (47, 0.041))
    for i, (ms, delay) in enumerate(marks):
        store.append(dataclasses.replace(rec(T0 + 0.1 + i * 0.1, ms / 1000), delay_s=delay))
    store.append(dataclasses.replace(rec(T0 + 70, 0.045), delay_s=0.04))  # another minute
    store._compact(T0 + 200)  # the marks survive compaction to minutes

    def ms(delayed: bool | None) -> list[tuple[float, int]]:
        hist = store.histogram("crud", T0, T0 + 1, delayed=delayed)
        return [(round(v * 1000), n) for v, n in hist]

    assert ms(None) == [(5, 2), (7, 1), (45, 1), (47, 1)]
    assert ms(True) == [(45, 1), (47, 1)]
    assert ms(False) == [(5, 2), (7, 1)]
    delays = store.delays("crud", T0, T0 + 1)
    assert [(round(v * 1000), n) for v, n in delays] == [(40, 1), (41, 1)]
    store.close()
    assert [r.delay_s for r in read_records(tmp_path / "records.jsonl")] == [
        m for _, m in marks
    ] + [0.04]


# -- outstanding requests: provisional timeouts ------------------------------------------------


def _outstanding(store: RecordStore, slots: int | None = 1) -> Outstanding:
    """A generator at 10 req/s from T0 (``slots`` of them, None: no end), 4 workers, HTTP
    deadline 2 s, streams 2.5 s."""
    pending = Outstanding(T0, 0.1, 4, {"crud": 2.0, "streaming": 2.5}, 2.0)
    if slots is not None:
        pending.end = T0 + slots * 0.1
    store.track(pending)
    return pending


def test_an_overdue_request_is_a_timeout_under_its_deadline_at_its_lower_bound() -> None:
    store = RecordStore()
    pending = _outstanding(store)
    pending.claimed = 1
    pending.sending[0] = (0, "crud")  # slot 0, scheduled at T0, deadline T0 + 2
    assert store.window(None, T0, T0 + 10, now=T0 + 1.9).count == 0  # not overdue yet
    st = store.window("crud", T0, T0 + 10, now=T0 + 3.0)
    assert (st.count, st.overdue, dict(st.outcomes)) == (1, 1, {Outcome.TIMEOUT: 1})
    assert st.max_s == pytest.approx(3.0, rel=1e-3)  # now - scheduled: it can only be later
    # filed under its deadline, like a record under its end
    assert store.window(None, T0 + 2, T0 + 3, now=T0 + 3.0).overdue == 1
    assert store.window(None, T0 + 3, T0 + 4, now=T0 + 3.5).count == 0
    assert store.window("streaming", T0, T0 + 10, now=T0 + 3.0).count == 0


def test_a_stream_has_its_own_deadline() -> None:
    store = RecordStore()
    pending = _outstanding(store)
    pending.claimed = 1
    pending.sending[1] = (0, "streaming")
    assert store.window(None, T0, T0 + 10, now=T0 + 2.4).count == 0
    assert store.window("streaming", T0, T0 + 10, now=T0 + 2.6).overdue == 1


def test_queued_requests_count_in_the_total_only_and_stop_counting_at_the_stop() -> None:
    store = RecordStore()
    pending = _outstanding(store, slots=None)
    pending.claimed = 4  # four workers busy since slots 0-3; slots 4.. due, not taken
    for worker in range(4):
        pending.sending[worker] = (worker, "crud")
    now = T0 + 4.0  # slots 0..19 have deadlines <= T0 + 3.9 (40 due; 20 overdue)
    total = store.window(None, T0, now, now=now)
    assert total.overdue == 20 and total.outcomes == {Outcome.TIMEOUT: 20}
    assert store.window("crud", T0, now, now=now).overdue == 4  # the in-flight ones
    pending.end = T0 + 1.0  # stopped at T0 + 1: only slots 0-9 were ever due
    assert store.window(None, T0, now, now=now).overdue == 10
    pending.backlog = False  # the queue will never be sent: unsent, not failed
    assert store.window(None, T0, now, now=now).overdue == 4
    store.untrack(pending)
    assert store.window(None, T0, now, now=now).count == 0


def test_the_final_record_replaces_the_provisional_one() -> None:
    store = RecordStore()
    pending = _outstanding(store)
    pending.claimed = 1
    pending.sending[0] = (0, "crud")
    assert store.window(None, T0, T0 + 10, now=T0 + 3.0).outcomes == {Outcome.TIMEOUT: 1}
    pending.sending[0] = None  # the generator's order: clear, then append
    store.append(RequestRecord("crud", T0, T0, T0 + 3.2, 3.2, Outcome.OK, 200))
    st = store.window(None, T0, T0 + 10, now=T0 + 4.0)
    assert (st.count, st.overdue, dict(st.outcomes)) == (1, 0, {Outcome.OK: 1})


def test_a_request_taken_after_the_read_of_claimed_is_counted_once_as_queued() -> None:
    store = RecordStore()
    pending = _outstanding(store)
    pending.claimed = 0
    pending.sending[0] = (0, "crud")  # written while a reader had already read claimed == 0
    assert store.window(None, T0, T0 + 10, now=T0 + 2.05).overdue == 1  # slot 0, as queued
    assert store.window("crud", T0, T0 + 10, now=T0 + 2.05).overdue == 0


def test_overdue_requests_raise_the_p95_as_a_lower_bound() -> None:
    store = RecordStore()
    for i in range(60):
        store.append(rec(T0 + 2.5 + i * 0.01, latency_s=0.01))
    pending = _outstanding(store, slots=4)
    pending.claimed = 4
    for worker in range(4):
        pending.sending[worker] = (worker, "crud")
    st = store.window("crud", T0, T0 + 4, now=T0 + 3.5)  # 60 answered + 4 overdue
    assert st.count == 64 and st.overdue == 4
    # the P95 is one of them, at the least it can be: 3.2..3.5 s after its scheduled time
    assert st.p95_s is not None and 3.1 <= st.p95_s <= 3.51
    store.untrack(pending)
    assert store.window("crud", T0, T0 + 4, now=T0 + 3.5).p95_s == pytest.approx(0.01, rel=0.01)
