"""Timestamped time series shared by every signal collector.

Times are ``time.monotonic()`` seconds: they never jump when the wall clock is adjusted, so
windows ("the last 10 minutes") stay exact during a drill. One :class:`Clock` maps them to
wall-clock time for reports, and maps wall-clock stamps that come from outside (Docker event
times, support-ticket times) and the monitor's wall-clock windows into the monotonic scale, so
every series of every collector shares one consistent timeline.

The mapping is an :class:`Anchor`, a (monotonic, wall) pair read together, taken afresh for
each conversion (or given: the monitor takes one a tick, so that a recording can keep it). One
pair taken once would drift: under NTP slew the wall clock runs at another rate than the
monotonic one (0.5 % fast on a VM seen), so a wall stamp of "now" would map past the monotonic
now by the rate difference times the anchor's age (18 s after an hour), and a window ending now
would miss it.

Window convention: ``window(start, end)`` holds the samples with ``start < t <= end``
(left-open, like a Prometheus range), so adjacent windows never count a sample twice.
``None`` for either bound means unbounded.

Counters (monotonically increasing values such as ``keyspace_hits`` or
``app_requests_total``) are read with :meth:`TimeSeries.increase` and :meth:`TimeSeries.rate`,
which handle counter resets (a process restart sets the counter back to zero): a value lower
than its predecessor counts as a reset, and the new value is taken as the increase since the
reset. No extrapolation is done: the increase is measured between the last sample at or
before ``start`` (the baseline, when there is one) and the last sample at or before ``end``.

Every series is thread-safe: collectors append from their threads while the monitor reads.
"""

from __future__ import annotations

import bisect
import itertools
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Generic, NamedTuple, TypeVar

T = TypeVar("T")

__all__ = ["DEFAULT_CLOCK", "Anchor", "Clock", "Sample", "SeriesSet", "TimeSeries", "series_key"]


class Anchor(NamedTuple):
    """One reading of both clocks: the mapping between them at that moment."""

    monotonic: float
    wall: float


class Clock:
    """Monotonic time for series, mapped to and from wall-clock time through a fresh
    :class:`Anchor` for each conversion unless one is given (module docstring)."""

    def __init__(
        self,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._monotonic = monotonic
        self._wall = wall
        # the first pair: kept with a recording (an older one maps every tick through it)
        self.anchor_monotonic, self.anchor_wall = self.anchor()

    def now(self) -> float:
        """The current monotonic time (the time scale of every series)."""
        return self._monotonic()

    def anchor(self) -> Anchor:
        """Both clocks read now: the mapping between them at this moment."""
        return Anchor(self._monotonic(), self._wall())

    def to_wall(self, t: float, anchor: Anchor | None = None) -> float:
        """Monotonic time -> Unix epoch seconds (through ``anchor``, default a fresh one)."""
        a = self.anchor() if anchor is None else anchor
        return a.wall + (t - a.monotonic)

    def to_datetime(self, t: float, anchor: Anchor | None = None) -> datetime:
        """Monotonic time -> aware UTC datetime, for reports."""
        return datetime.fromtimestamp(self.to_wall(t, anchor), tz=UTC)

    def from_wall(self, epoch: float, anchor: Anchor | None = None) -> float:
        """Unix epoch seconds (e.g. a Docker event's time) -> monotonic time (through
        ``anchor``, default a fresh one)."""
        a = self.anchor() if anchor is None else anchor
        return a.monotonic + (epoch - a.wall)


DEFAULT_CLOCK = Clock()
"""The clock every collector uses unless given another: one timeline for the whole process."""


class Sample(NamedTuple, Generic[T]):
    t: float
    value: T


def series_key(name: str, labels: Mapping[str, str]) -> str:
    """The canonical text of a series, e.g. ``restarts{service="backend-asgi"}``."""
    if not labels:
        return name
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


class TimeSeries(Generic[T]):
    """Samples ``(t, value)`` kept in time order; out-of-order appends are inserted in place.

    ``retention`` (seconds) drops samples older than the newest sample minus ``retention``;
    ``None`` keeps everything (a drill report wants the whole timeline).
    """

    _TRIM_BATCH = 64

    def __init__(
        self,
        name: str = "",
        labels: Mapping[str, str] | None = None,
        *,
        retention: float | None = None,
    ) -> None:
        self.name = name
        self.labels: dict[str, str] = dict(labels or {})
        self.retention = retention
        self._lock = threading.Lock()
        self._t: list[float] = []
        self._v: list[T] = []

    def __repr__(self) -> str:
        return f"<TimeSeries {series_key(self.name, self.labels)} n={len(self)}>"

    def __len__(self) -> int:
        with self._lock:
            return len(self._t)

    def append(self, t: float, value: T) -> None:
        with self._lock:
            if not self._t or t >= self._t[-1]:
                self._t.append(t)
                self._v.append(value)
            else:
                i = bisect.bisect_right(self._t, t)
                self._t.insert(i, t)
                self._v.insert(i, value)
            if self.retention is not None:
                cut = bisect.bisect_left(self._t, self._t[-1] - self.retention)
                if cut >= self._TRIM_BATCH:
                    del self._t[:cut]
                    del self._v[:cut]

    @property
    def latest(self) -> Sample[T] | None:
        with self._lock:
            return Sample(self._t[-1], self._v[-1]) if self._t else None

    @property
    def first(self) -> Sample[T] | None:
        with self._lock:
            return Sample(self._t[0], self._v[0]) if self._t else None

    def _bounds(self, start: float | None, end: float | None) -> tuple[int, int]:
        lo = 0 if start is None else bisect.bisect_right(self._t, start)
        hi = len(self._t) if end is None else bisect.bisect_right(self._t, end)
        return lo, max(lo, hi)

    def window(self, start: float | None = None, end: float | None = None) -> list[Sample[T]]:
        """Samples with ``start < t <= end``."""
        with self._lock:
            lo, hi = self._bounds(start, end)
            return [Sample(t, v) for t, v in zip(self._t[lo:hi], self._v[lo:hi], strict=True)]

    def __iter__(self) -> Iterator[Sample[T]]:
        return iter(self.window())

    def values(self, start: float | None = None, end: float | None = None) -> list[T]:
        with self._lock:
            lo, hi = self._bounds(start, end)
            return self._v[lo:hi]

    def count(self, start: float | None = None, end: float | None = None) -> int:
        """Number of samples in the window: for event series (one sample per event)."""
        with self._lock:
            lo, hi = self._bounds(start, end)
            return hi - lo

    def at_or_before(self, t: float) -> Sample[T] | None:
        with self._lock:
            i = bisect.bisect_right(self._t, t)
            return Sample(self._t[i - 1], self._v[i - 1]) if i else None

    # -- numeric views (gauges) ------------------------------------------------------------

    def sum(self: TimeSeries[float], start: float | None = None, end: float | None = None) -> float:
        return float(sum(self.values(start, end)))

    def mean(
        self: TimeSeries[float], start: float | None = None, end: float | None = None
    ) -> float | None:
        vs = self.values(start, end)
        return sum(vs) / len(vs) if vs else None

    def min(
        self: TimeSeries[float], start: float | None = None, end: float | None = None
    ) -> float | None:
        vs = self.values(start, end)
        return min(vs) if vs else None

    def max(
        self: TimeSeries[float], start: float | None = None, end: float | None = None
    ) -> float | None:
        vs = self.values(start, end)
        return max(vs) if vs else None

    # -- counter views -----------------------------------------------------------------------

    def _counter_samples(self, start: float | None, end: float | None) -> list[Sample[T]]:
        """The baseline sample (last at or before ``start``) plus the samples in the window."""
        with self._lock:
            lo, hi = self._bounds(start, end)
            if start is not None and lo > 0:
                lo -= 1
            return [Sample(t, v) for t, v in zip(self._t[lo:hi], self._v[lo:hi], strict=True)]

    def increase(
        self: TimeSeries[float], start: float | None = None, end: float | None = None
    ) -> float | None:
        """Counter increase over the window, resets handled; ``None`` with fewer than 2 samples."""
        return _increase(self._counter_samples(start, end))

    def rate(
        self: TimeSeries[float], start: float | None = None, end: float | None = None
    ) -> float | None:
        """Per-second counter rate: the increase divided by the time its samples span."""
        samples = self._counter_samples(start, end)
        inc = _increase(samples)
        if inc is None or samples[-1].t <= samples[0].t:
            return None
        return inc / (samples[-1].t - samples[0].t)

    def resets(
        self: TimeSeries[float], start: float | None = None, end: float | None = None
    ) -> int:
        """How many times the counter went backwards in the window."""
        samples = self._counter_samples(start, end)
        return sum(1 for prev, cur in itertools.pairwise(samples) if cur.value < prev.value)


def _increase(samples: list[Sample[float]]) -> float | None:
    if len(samples) < 2:
        return None
    total = 0.0
    for prev, cur in itertools.pairwise(samples):
        delta = cur.value - prev.value
        total += delta if delta >= 0 else cur.value
    return total


class SeriesSet:
    """A collector's named, labelled float series: ``get("restarts", service="backend-asgi")``.

    ``name`` is positional-only so that any label name (even ``name``) can be a keyword.
    """

    def __init__(self, *, retention: float | None = None) -> None:
        self.retention = retention
        self._lock = threading.Lock()
        self._series: dict[str, TimeSeries[float]] = {}

    def ensure(self, name: str, /, **labels: str) -> TimeSeries[float]:
        """The series, created empty if it does not exist yet."""
        key = series_key(name, labels)
        with self._lock:
            ts = self._series.get(key)
            if ts is None:
                ts = self._series[key] = TimeSeries(name, labels, retention=self.retention)
            return ts

    def get(self, name: str, /, **labels: str) -> TimeSeries[float]:
        """The series; ``KeyError`` naming the known series when it does not exist."""
        key = series_key(name, labels)
        with self._lock:
            ts = self._series.get(key)
            if ts is None:
                known = ", ".join(sorted(self._series)) or "none yet"
                raise KeyError(f"no series {key} (known: {known})")
            return ts

    def append(self, name: str, t: float, value: float, /, **labels: str) -> None:
        self.ensure(name, **labels).append(t, value)

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._series

    def keys(self) -> list[str]:
        with self._lock:
            return sorted(self._series)

    def select(self, name: str, /, **labels: str) -> list[TimeSeries[float]]:
        """Every series called ``name`` whose labels include all of ``labels``."""
        with self._lock:
            candidates = list(self._series.values())
        return [
            ts
            for ts in candidates
            if ts.name == name and all(ts.labels.get(k) == v for k, v in labels.items())
        ]

    def count(
        self, name: str, start: float | None = None, end: float | None = None, /, **labels: str
    ) -> int:
        """Events in the window, summed over the matching series."""
        return sum(ts.count(start, end) for ts in self.select(name, **labels))

    def increase(
        self, name: str, start: float | None = None, end: float | None = None, /, **labels: str
    ) -> float | None:
        """Counter increase summed over the matching series; ``None`` if none has 2 samples."""
        parts = [ts.increase(start, end) for ts in self.select(name, **labels)]
        known = [p for p in parts if p is not None]
        return sum(known) if known else None
