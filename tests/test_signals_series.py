"""Pure tests of rollback_drill.signals.series: windows, counters with resets, rates, clock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from rollback_drill.signals.series import Anchor, Sample, SeriesSet, TimeSeries, series_key
from tests.slew import HOUR_S, SLEW, SlewingTime


def make(points: list[tuple[float, float]]) -> TimeSeries[float]:
    ts: TimeSeries[float] = TimeSeries("x")
    for t, v in points:
        ts.append(t, v)
    return ts


def test_window_is_left_open_right_closed() -> None:
    ts = make([(1, 10), (2, 20), (3, 30), (4, 40)])
    assert ts.window(1, 3) == [Sample(2, 20), Sample(3, 30)]
    assert ts.window(None, 2) == [Sample(1, 10), Sample(2, 20)]
    assert ts.window(3) == [Sample(4, 40)]
    assert ts.window(4, 10) == []
    assert ts.count(0, 4) == 4
    # adjacent windows never count a sample twice
    assert ts.count(0, 2) + ts.count(2, 4) == ts.count(0, 4)


def test_out_of_order_append_is_inserted_in_time_order() -> None:
    ts = make([(1, 1), (3, 3), (2, 2), (0.5, 0.5)])
    assert [s.t for s in ts] == [0.5, 1, 2, 3]
    assert ts.latest == Sample(3, 3)
    assert ts.first == Sample(0.5, 0.5)


def test_empty_series() -> None:
    ts: TimeSeries[float] = TimeSeries("x")
    assert ts.latest is None
    assert ts.first is None
    assert ts.window() == []
    assert ts.mean() is None
    assert ts.min() is None
    assert ts.max() is None
    assert ts.increase() is None
    assert ts.rate() is None
    assert ts.sum() == 0.0
    assert len(ts) == 0


def test_gauge_views() -> None:
    ts = make([(1, 0.5), (2, 0.97), (3, 0.96), (4, 0.99)])
    assert ts.min(1, 4) == pytest.approx(0.96)  # "sustained > 95 %" over (1, 4]
    assert ts.max() == pytest.approx(0.99)
    assert ts.mean(2, 4) == pytest.approx(0.975)
    assert ts.sum(0, 1) == pytest.approx(0.5)
    assert ts.at_or_before(2.5) == Sample(2, 0.97)
    assert ts.at_or_before(0.9) is None


def test_increase_uses_the_sample_before_the_window_as_baseline() -> None:
    ts = make([(0, 100), (10, 110), (20, 130), (30, 160)])
    assert ts.increase(10, 30) == 50  # 110 at t=10 is the baseline
    assert ts.increase(5, 30) == 60  # baseline 100 at t=0
    assert ts.increase(None, None) == 60
    assert ts.increase(25, 30) == 30
    assert ts.increase(30, 40) is None  # only the baseline: fewer than 2 samples


def test_increase_handles_a_counter_reset() -> None:
    # the process restarted between t=20 and t=30: 130 -> 5 means 5 since the reset
    ts = make([(0, 100), (10, 110), (20, 130), (30, 5), (40, 25)])
    assert ts.increase() == 30 + 5 + 20
    assert ts.resets() == 1
    assert ts.resets(30, 40) == 0


def test_reset_to_zero_and_flat_counter() -> None:
    ts = make([(0, 7), (1, 0), (2, 0), (3, 0)])
    assert ts.increase() == 0
    assert ts.rate() == 0
    assert ts.resets() == 1


def test_rate_divides_by_the_time_the_samples_span() -> None:
    ts = make([(0, 0), (10, 50), (20, 100)])
    assert ts.rate() == pytest.approx(5.0)
    assert ts.rate(10, 20) == pytest.approx(5.0)
    same_t = make([(1, 1), (1, 2)])
    assert same_t.rate() is None


def test_retention_drops_old_samples_in_batches() -> None:
    ts: TimeSeries[float] = TimeSeries("x", retention=100)
    for i in range(1000):
        ts.append(float(i), float(i))
    first = ts.first
    assert first is not None
    assert 999 - 100 - TimeSeries._TRIM_BATCH <= first.t <= 999 - 100
    assert ts.latest == Sample(999, 999)


def test_series_set_get_select_and_aggregate() -> None:
    s = SeriesSet()
    s.append("reqs", 0, 0, target="a", status="200")
    s.append("reqs", 10, 10, target="a", status="200")
    s.append("reqs", 0, 5, target="b", status="500")
    s.append("reqs", 10, 7, target="b", status="500")
    assert s.increase("reqs", None, None) == 12
    assert s.increase("reqs", None, None, status="500") == 2
    assert s.increase("reqs", None, None, status="404") is None
    assert s.count("reqs", 0, 10, target="a") == 1
    assert len(s.select("reqs")) == 2
    assert s.keys() == ['reqs{status="200",target="a"}', 'reqs{status="500",target="b"}']
    assert 'reqs{status="200",target="a"}' in s
    with pytest.raises(KeyError, match=r"no series reqs\{target=\"c\"\}"):
        s.get("reqs", target="c")
    # a label may be called "name": the series name is positional-only
    s.append("weird", 1, 1, name="n")
    assert s.get("weird", name="n").latest == Sample(1, 1)


def test_series_key_is_canonical() -> None:
    assert series_key("a", {}) == "a"
    assert series_key("a", {"z": "1", "b": "2"}) == 'a{b="2",z="1"}'


def test_clock_maps_monotonic_and_wall_time_both_ways() -> None:
    time_ = SlewingTime(0.0, mono0=100.0, wall0=1_700_000_000.0)
    clock = time_.clock()
    assert clock.to_wall(110.0) == 1_700_000_010.0
    assert clock.from_wall(1_700_000_010.0) == 110.0
    assert clock.to_datetime(100.0) == datetime.fromtimestamp(1_700_000_000, tz=UTC)
    time_.advance(5.0)
    assert clock.now() == 105.0
    assert clock.anchor() == Anchor(105.0, 1_700_000_005.0)
    assert (clock.anchor_monotonic, clock.anchor_wall) == (100.0, 1_700_000_000.0)  # the first


def test_a_wall_stamp_of_now_lands_in_a_window_ending_now_after_an_hour_of_slew() -> None:
    """The wall clock runs 0.5 % fast: an hour on, a mapping taken at the start would put a wall
    stamp of "now" 18 s into the monotonic future, past a window that ends now. The clock maps
    through the mapping of the moment: an event stamped now (a Docker event, a ticket) is in the
    window ending now, one stamped a minute ago a minute back."""
    time_ = SlewingTime()
    clock = time_.clock()
    time_.advance(HOUR_S)
    events: TimeSeries[float] = TimeSeries("events")
    events.append(clock.from_wall(time_.wall()), 1.0)
    events.append(clock.from_wall(time_.wall() - 60.0), 1.0)
    now = clock.now()
    assert events.count(now - 1.0, now) == 1
    assert events.count(now - 61.0, now) == 2
    assert abs(clock.to_wall(now) - time_.wall()) < 1e-6


def test_the_first_mapping_drifts_by_the_slew_times_its_age_and_a_given_one_is_used() -> None:
    time_ = SlewingTime()
    clock = time_.clock()
    first = Anchor(clock.anchor_monotonic, clock.anchor_wall)
    time_.advance(HOUR_S)
    now, wall = clock.now(), time_.wall()
    assert clock.from_wall(wall, first) - now == pytest.approx(SLEW * HOUR_S)
    assert clock.to_wall(now, first) == pytest.approx(wall - SLEW * HOUR_S)
    assert clock.from_wall(wall) == now


def test_concurrent_appends_lose_nothing() -> None:
    ts: TimeSeries[float] = TimeSeries("x")

    def writer(offset: int) -> None:
        for i in range(2000):
            ts.append(float(i * 4 + offset), 1.0)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    times = [s.t for s in ts]
    assert len(times) == 8000
    assert times == sorted(times)


def test_string_series_for_errors() -> None:
    errors: TimeSeries[str] = TimeSeries("errors")
    errors.append(1.0, "redis-info INFO: ConnectionError: refused")
    assert errors.values() == ["redis-info INFO: ConnectionError: refused"]
