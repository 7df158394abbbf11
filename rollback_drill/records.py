"""Request records, outcome classification, and the live record store the monitor reads.

One :class:`RequestRecord` per scheduled request (or WebSocket conversation / SSE stream). The
:class:`RecordStore` keeps no list of records: it folds each one into **1-second buckets per
category** -- outcome counters, connection-failure counters and a *sparse* HdrHistogram of the
latency (``hdrh.HdrHistogram`` counts indices at 3 significant figures, only the non-empty
ones kept). Buckets older than ``fine_retention_s`` are merged into 60-second buckets, so
memory grows with run time at a bounded rate whatever the request rate, and never with the
number of requests. A window query merges the buckets in range and reads percentiles with
HdrHistogram's own rule (target count ``int(p * total / 100 + 0.5)``, highest equivalent value).

Time keys: a record is filed under its *completion* time (``ended``, epoch seconds), the moment
the outcome became knowable. Windows are half-open ``[start, end)`` and widened outwards to whole
buckets. Its ``latency_s`` is measured from the *scheduled* send time (no coordinated omission).

Every record can also be streamed to a JSON-lines journal (``journal=path``) and read back with
:func:`read_records` -- e.g. to replay a run into a fresh store.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from statistics import NormalDist
from typing import IO, Final

from hdrh.histogram import HdrHistogram


class Outcome(StrEnum):
    OK = "ok"
    AUTH_FAILURE = "auth_failure"
    CLIENT_ERROR = "client_error"
    SERVER_ERROR = "server_error"
    CONNECT_ERROR = "connect_error"
    TIMEOUT = "timeout"
    WS_DISCONNECT = "ws_disconnect"


_OUTCOMES: Final = tuple(Outcome)
_OUTCOME_INDEX: Final = {o: i for i, o in enumerate(_OUTCOMES)}
DB_CONNECTION: Final = "db-connection"
REDIS_CONNECTION: Final = "redis-connection"


def classify_status(status: int, *, authenticated: bool) -> Outcome:
    """Outcome of an HTTP status: 401/403 on an authenticated request is an auth failure."""
    if status < 400:
        return Outcome.OK
    if status >= 500:
        return Outcome.SERVER_ERROR
    if authenticated and status in (401, 403):
        return Outcome.AUTH_FAILURE
    return Outcome.CLIENT_ERROR


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the load generator saw it. Times are epoch seconds."""

    category: str
    scheduled: float
    started: float
    ended: float
    latency_s: float
    outcome: Outcome
    status: int | None = None
    served_by: str | None = None
    release: str | None = None
    failure_cause: str | None = None
    write_id: str | None = None
    delay_s: float | None = None  # a faulty release slowed this answer on purpose, this long

    @property
    def queued_s(self) -> float:
        """How late the request left compared with its schedule (concurrency bound, timers)."""
        return max(0.0, self.started - self.scheduled)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> RequestRecord:
        data = json.loads(line)
        data["outcome"] = Outcome(data["outcome"])
        return cls(**data)


def read_records(path: Path | str) -> Iterator[RequestRecord]:
    """Records of a JSON-lines journal, in file order."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield RequestRecord.from_json(line)


@dataclass(frozen=True, slots=True)
class WindowStats:
    """Aggregates of the records that completed in ``[start, end)`` (one category or all).

    Latencies are in seconds and None for an empty window; shares are 0.0 for an empty window
    (check ``count`` against a minimum number of samples before judging a share).
    """

    category: str | None
    start: float
    end: float
    count: int
    outcomes: Mapping[Outcome, int] = field(default_factory=dict)
    db_connection_failures: int = 0
    redis_connection_failures: int = 0
    p50_s: float | None = None
    p95_s: float | None = None
    p99_s: float | None = None
    max_s: float | None = None
    p95_low_s: float | None = None  # the P95's 80 % interval (see _stats)
    p95_high_s: float | None = None

    def share(self, *outcomes: Outcome) -> float:
        if not self.count:
            return 0.0
        return sum(self.outcomes.get(o, 0) for o in outcomes) / self.count

    @property
    def error_share(self) -> float:
        """Share of requests whose outcome is anything but ``ok``."""
        return 1.0 - self.share(Outcome.OK) if self.count else 0.0

    @property
    def auth_failure_share(self) -> float:
        return self.share(Outcome.AUTH_FAILURE)

    @property
    def ws_disconnect_share(self) -> float:
        return self.share(Outcome.WS_DISCONNECT)

    @property
    def db_connection_failure_share(self) -> float:
        return self.db_connection_failures / self.count if self.count else 0.0


# Latency histogram layout: microseconds, 1 us .. 1 h, 3 significant figures (0.1 %).
_HDR: Final = HdrHistogram(1, 3_600_000_000, 3)
_HDR_MAX_US: Final = 3_600_000_000
_PERCENTILES: Final = (50.0, 95.0, 99.0)
_Z80: Final = NormalDist().inv_cdf(0.90)  # two-sided 80 %: each end a one-sided 90 % bound


class _Bucket:
    __slots__ = ("causes", "count", "delayed", "delays", "hist", "max_us", "outcomes")

    def __init__(self) -> None:
        self.count = 0
        self.outcomes = [0] * len(_OUTCOMES)
        self.causes = [0, 0]  # db, redis
        self.hist: dict[int, int] = {}
        self.max_us = 0
        self.delayed: dict[int, int] | None = None  # latencies of the records slowed on purpose
        self.delays: dict[int, int] | None = None  # ... and the delays they were slowed by

    def merge(self, other: _Bucket) -> None:
        self.count += other.count
        for i, n in enumerate(other.outcomes):
            self.outcomes[i] += n
        self.causes[0] += other.causes[0]
        self.causes[1] += other.causes[1]
        _added(self.hist, other.hist)
        self.max_us = max(self.max_us, other.max_us)
        if other.delayed and other.delays:
            self.delayed = _added(self.delayed, other.delayed)
            self.delays = _added(self.delays, other.delays)


def _added(into: dict[int, int] | None, counts: dict[int, int]) -> dict[int, int]:
    into = into if into is not None else {}
    for index, n in counts.items():
        into[index] = into.get(index, 0) + n
    return into


def _percentiles(
    hist: Mapping[int, int], total: int, extra: tuple[float, ...] = ()
) -> dict[float, int]:
    """HdrHistogram's ``get_value_at_percentile`` over sparse counts (values in us), for
    :data:`_PERCENTILES` and the ``extra`` percentiles."""
    result: dict[float, int] = {}
    wanted = sorted({*_PERCENTILES, *extra})
    targets = [(p, max(int(p * total / 100 + 0.5), 1)) for p in wanted]
    running = 0
    t = 0
    for index in sorted(hist):
        running += hist[index]
        while t < len(targets) and running >= targets[t][1]:
            value = _HDR.get_value_from_index(index)
            result[targets[t][0]] = _HDR.get_highest_equivalent_value(value)
            t += 1
        if t == len(targets):
            break
    return result


def _merge_range(into: _Bucket, buckets: dict[int, _Bucket], lo: int, hi: int, step: int) -> None:
    """Merge the buckets keyed in ``[lo, hi)``: by lookup or by scan, whichever is shorter."""
    if (hi - lo) // step <= len(buckets):
        for key in range(lo, hi, step):
            bucket = buckets.get(key)
            if bucket is not None:
                into.merge(bucket)
    else:
        for key, bucket in buckets.items():
            if lo <= key < hi:
                into.merge(bucket)


def _seconds(counts: Mapping[int, int]) -> list[tuple[float, int]]:
    return [
        (_HDR.get_highest_equivalent_value(_HDR.get_value_from_index(i)) / 1e6, n)
        for i, n in sorted(counts.items())
        if n > 0
    ]


class RecordStore:
    """Thread-safe store of request outcomes, queried by time window; bounded memory.

    ``append`` is cheap (called from the generator's event loop); ``window``/``series`` may be
    called from any thread (the monitor).
    """

    BUCKET_S: Final = 1
    COARSE_S: Final = 60

    def __init__(
        self,
        *,
        journal: Path | str | None = None,
        fine_retention_s: float = 1800.0,
    ) -> None:
        self._lock = threading.Lock()
        self._fine: dict[str, dict[int, _Bucket]] = {}
        self._coarse: dict[str, dict[int, _Bucket]] = {}
        self._fine_retention = int(fine_retention_s)
        self._compacted_until = -1
        self._latest = -1
        self._total = 0
        self._journal: IO[str] | None = (
            open(journal, "a", encoding="utf-8") if journal is not None else None  # noqa: SIM115
        )

    # -- writing -----------------------------------------------------------------------------

    def append(self, record: RequestRecord) -> None:
        second = int(record.ended)
        latency_us = min(max(int(record.latency_s * 1_000_000), 1), _HDR_MAX_US)
        index = _HDR.get_counts_array_index(latency_us)
        cause = record.failure_cause
        with self._lock:
            buckets = self._fine.get(record.category)
            if buckets is None:
                buckets = self._fine[record.category] = {}
            bucket = buckets.get(second)
            if bucket is None:
                bucket = buckets[second] = _Bucket()
            bucket.count += 1
            bucket.outcomes[_OUTCOME_INDEX[record.outcome]] += 1
            if cause == DB_CONNECTION:
                bucket.causes[0] += 1
            elif cause == REDIS_CONNECTION:
                bucket.causes[1] += 1
            hist = bucket.hist
            hist[index] = hist.get(index, 0) + 1
            if record.delay_s is not None:
                delay_us = min(max(int(record.delay_s * 1_000_000), 1), _HDR_MAX_US)
                bucket.delayed = _added(bucket.delayed, {index: 1})
                bucket.delays = _added(bucket.delays, {_HDR.get_counts_array_index(delay_us): 1})
            if latency_us > bucket.max_us:
                bucket.max_us = latency_us
            self._total += 1
            if second > self._latest:
                self._latest = second
                if second - self._fine_retention - self._compacted_until >= self.COARSE_S:
                    self._compact(second - self._fine_retention)
            if self._journal is not None:
                self._journal.write(record.to_json() + "\n")

    def extend(self, records: Iterable[RequestRecord]) -> None:
        for record in records:
            self.append(record)

    def _compact(self, before: int) -> None:
        """Merge 1-s buckets older than ``before`` (rounded down to a minute) into 60-s ones."""
        limit = before - before % self.COARSE_S
        for category, buckets in self._fine.items():
            coarse = self._coarse.setdefault(category, {})
            for second in [s for s in buckets if s < limit]:
                key = second - second % self.COARSE_S
                target = coarse.get(key)
                if target is None:
                    target = coarse[key] = _Bucket()
                target.merge(buckets.pop(second))
        self._compacted_until = limit

    def close(self) -> None:
        """Flush and close the journal (the store stays queryable)."""
        with self._lock:
            if self._journal is not None:
                self._journal.close()
                self._journal = None

    def flush(self) -> None:
        with self._lock:
            if self._journal is not None:
                self._journal.flush()

    # -- reading -----------------------------------------------------------------------------

    @property
    def total(self) -> int:
        """Records appended so far (all categories)."""
        return self._total

    def categories(self) -> list[str]:
        with self._lock:
            return sorted(set(self._fine) | set(self._coarse))

    def time_range(self) -> tuple[float, float] | None:
        """First and last bucket start (epoch seconds) holding any record."""
        with self._lock:
            keys = [s for b in self._fine.values() for s in b]
            keys += [s for b in self._coarse.values() for s in b]
        return (float(min(keys)), float(max(keys))) if keys else None

    def window(self, category: str | None, start: float, end: float) -> WindowStats:
        """Stats of records of ``category`` (None: all) that completed in ``[start, end)``."""
        return self._stats(category, start, end, self._merged(category, start, end))

    def _merged(self, category: str | None, start: float, end: float) -> _Bucket:
        lo, hi = math.floor(start), math.ceil(end)
        merged = _Bucket()
        with self._lock:
            cats = [category] if category is not None else list(self._fine.keys() | self._coarse)
            for cat in cats:
                _merge_range(merged, self._fine.get(cat, {}), lo, hi, 1)
                first_minute = lo - lo % self.COARSE_S
                _merge_range(merged, self._coarse.get(cat, {}), first_minute, hi, self.COARSE_S)
        return merged

    def histogram(
        self, category: str | None, start: float, end: float, *, delayed: bool | None = None
    ) -> list[tuple[float, int]]:
        """The window's latency histogram: (seconds, count) per HdrHistogram bucket, ascending
        (what a drill needs to model a latency distribution, e.g. the baseline's). ``delayed``
        True keeps only the records a faulty release slowed on purpose (``delay_s``), False
        only the others, None all."""
        merged = self._merged(category, start, end)
        marked = merged.delayed or {}
        if delayed is None:
            counts = merged.hist
        elif delayed:
            counts = marked
        else:
            counts = {i: n - marked.get(i, 0) for i, n in merged.hist.items()}
        return _seconds(counts)

    def delays(self, category: str | None, start: float, end: float) -> list[tuple[float, int]]:
        """The delays a faulty release reports it added to the window's records it slowed:
        (seconds, count), ascending."""
        return _seconds(self._merged(category, start, end).delays or {})

    def series(
        self, category: str | None, start: float, end: float, step_s: int = 1
    ) -> list[WindowStats]:
        """One :class:`WindowStats` per ``step_s`` from ``floor(start)`` (the report's timeline)."""
        steps = range(math.floor(start), math.ceil(end), step_s)
        return [self.window(category, t, min(t + step_s, end)) for t in steps]

    @staticmethod
    def _stats(category: str | None, start: float, end: float, bucket: _Bucket) -> WindowStats:
        if not bucket.count:
            return WindowStats(category, start, end, 0)
        # The P95's 80 % interval, distribution-free: the order statistics at ranks
        # n*q -/+ z*sqrt(n*q*(1-q)) (the count below the true quantile is binomial; normal
        # approximation, good from ~100 samples). A few lines over the histogram kept here.
        half = _Z80 * math.sqrt(0.95 * 0.05 / bucket.count) * 100
        p95_low, p95_high = max(95.0 - half, 0.0), min(95.0 + half, 100.0)
        values = _percentiles(bucket.hist, bucket.count, (p95_low, p95_high))
        return WindowStats(
            category=category,
            start=start,
            end=end,
            count=bucket.count,
            outcomes={o: n for o, n in zip(_OUTCOMES, bucket.outcomes, strict=True) if n},
            db_connection_failures=bucket.causes[0],
            redis_connection_failures=bucket.causes[1],
            p50_s=values[50.0] / 1e6,
            p95_s=values[95.0] / 1e6,
            p99_s=values[99.0] / 1e6,
            max_s=_HDR.get_highest_equivalent_value(bucket.max_us) / 1e6,
            p95_low_s=values[p95_low] / 1e6,
            p95_high_s=values[p95_high] / 1e6,
        )
