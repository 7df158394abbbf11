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

Unanswered requests: a request still outstanding past its *deadline* (what
:class:`Outstanding` says, filled by the load generator) is already a failure, not only once the
client gives up (the request timeout, 10 s). A window query counts it as a *provisional*
``timeout`` filed under its deadline -- the moment that outcome became knowable, as a completed
record is filed under ``ended`` -- if the deadline has passed by the time of the query
(``now``). Its latency is its lower bound ``now - scheduled``: the request can only take longer,
so a window's P95 with provisional records is a lower bound of the true one, never an
overestimate. The provisional record lives in no bucket: it is computed at each query from the
generator's state, and once the request ends the final record (whatever its outcome, filed under
``ended``) replaces it. Requests due but not sent yet (every worker busy) are outstanding too,
with the plain HTTP deadline; their category is drawn only at send time, so they count in the
all-categories window only. ``WindowStats.overdue`` says how many of a window's requests are
provisional.

Every record can also be streamed to a JSON-lines journal (``journal=path``) and read back with
:func:`read_records` -- e.g. to replay a run into a fresh store.
"""

from __future__ import annotations

import json
import math
import threading
import time
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


def classify_handshake(status: int) -> Outcome:
    """Outcome of a WebSocket handshake refused with ``status`` (anything but 101): it did not
    open, so it is never ``ok`` -- 401/403 an auth failure, 5xx a server error, else (a
    redirect, a 404) a client error."""
    outcome = classify_status(status, authenticated=True)
    return Outcome.CLIENT_ERROR if outcome is Outcome.OK else outcome


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
    # of ``count``: requests still unanswered past their deadline, counted as provisional
    # timeouts at their lower-bound latency (see the module docstring)
    overdue: int = 0

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
    __slots__ = ("causes", "count", "delayed", "delays", "hist", "max_us", "outcomes", "overdue")

    def __init__(self) -> None:
        self.count = 0
        self.overdue = 0  # provisional timeouts (only in a query's merged bucket)
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


def _latency_index(latency_s: float) -> tuple[int, int]:
    """(microseconds clamped to the histogram's range, its HdrHistogram counts index)."""
    latency_us = min(max(int(latency_s * 1_000_000), 1), _HDR_MAX_US)
    return latency_us, _HDR.get_counts_array_index(latency_us)


class Outstanding:
    """The requests one load generator has due but not answered yet, readable by the store.

    The generator (one event-loop thread) writes it without a lock, one plain attribute or
    list-item store at a time (atomic under the GIL); :class:`RecordStore` reads it under its
    own lock at each window query. Slot ``k`` is scheduled at ``t0 + k * interval`` (epoch s).

    - ``claimed``: slots taken by a worker so far (taken slots may still lie in the future);
      due slots from ``claimed`` on are *queued*: every worker is busy;
    - ``sending[w]``: ``(slot, category)`` of worker ``w``'s request in flight, None when idle;
      the generator sets it after taking the slot and clears it *before* appending the final
      record;
    - ``deadlines``: seconds after its scheduled time by which a request of a category must have
      ended (``queue_deadline_s`` for a queued one, whose category is not drawn yet);
    - ``end``: no slot is due at or after this (the run's duration, or its stop);
      ``backlog`` False once the generator stopped: its queue will never be sent.

    The write orders make every race with a reader err one way: a request just taken (between
    ``claimed`` and ``sending``) or just answered (between clearing ``sending`` and its record)
    may be missing from one query; it is never counted twice.
    """

    __slots__ = (
        "backlog",
        "claimed",
        "deadlines",
        "end",
        "interval",
        "queue_deadline_s",
        "sending",
        "t0",
    )

    def __init__(
        self,
        t0: float,
        interval: float,
        workers: int,
        deadlines: Mapping[str, float],
        queue_deadline_s: float,
    ) -> None:
        self.t0 = t0
        self.interval = interval
        self.claimed = 0
        self.sending: list[tuple[int, str] | None] = [None] * workers
        self.deadlines = dict(deadlines)
        self.queue_deadline_s = queue_deadline_s
        self.end = math.inf
        self.backlog = True

    def overdue(self, category: str | None, lo: float, hi: float, now: float) -> Iterator[float]:
        """Scheduled times (epoch s) of the requests of ``category`` (None: all, queued ones
        included) still outstanding at ``now`` whose deadline lies in ``[lo, min(hi, now)]``."""
        claimed = self.claimed  # first: a request taken after this read counts as queued
        t0, interval = self.t0, self.interval
        for entry in list(self.sending):
            if entry is None:
                continue
            slot, cat = entry
            if slot >= claimed or (category is not None and cat != category):
                continue
            scheduled = t0 + slot * interval
            deadline = scheduled + self.deadlines.get(cat, self.queue_deadline_s)
            if lo <= deadline < hi and deadline <= now:
                yield scheduled
        if category is not None or not self.backlog:
            return
        wait = self.queue_deadline_s
        due = math.ceil((min(now, self.end) - t0) / interval)  # slots scheduled before then
        first = max(claimed, math.floor((lo - wait - t0) / interval))
        last = min(due, math.ceil((min(hi, now) - wait - t0) / interval) + 1)
        for slot in range(first, last):
            scheduled = t0 + slot * interval
            deadline = scheduled + wait
            if lo <= deadline < hi and deadline <= now and scheduled < self.end:
                yield scheduled


class RecordStore:
    """Thread-safe store of request outcomes, queried by time window; bounded memory.

    ``append`` is cheap (called from the generator's event loop); ``window``/``series`` may be
    called from any thread (the monitor). A generator registers its :class:`Outstanding`
    requests with ``track``; window queries then count the overdue ones (module docstring).
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
        self._tracked: list[Outstanding] = []
        self._journal: IO[str] | None = (
            open(journal, "a", encoding="utf-8") if journal is not None else None  # noqa: SIM115
        )

    # -- writing -----------------------------------------------------------------------------

    def append(self, record: RequestRecord) -> None:
        second = int(record.ended)
        latency_us, index = _latency_index(record.latency_s)
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

    def track(self, outstanding: Outstanding) -> None:
        """Count ``outstanding``'s overdue requests in every window query until ``untrack``."""
        with self._lock:
            self._tracked.append(outstanding)

    def untrack(self, outstanding: Outstanding) -> None:
        """Forget a generator's outstanding requests (it stopped; those it abandoned leave no
        record, as before)."""
        with self._lock:
            if outstanding in self._tracked:
                self._tracked.remove(outstanding)

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

    def window(
        self, category: str | None, start: float, end: float, *, now: float | None = None
    ) -> WindowStats:
        """Stats of records of ``category`` (None: all) that completed in ``[start, end)``,
        and of the requests still outstanding at ``now`` (default: the wall clock) whose
        deadline passed in it, as provisional timeouts (module docstring)."""
        return self._stats(category, start, end, self._merged(category, start, end, now))

    def _merged(
        self, category: str | None, start: float, end: float, now: float | None = None
    ) -> _Bucket:
        lo, hi = math.floor(start), math.ceil(end)
        merged = _Bucket()
        with self._lock:
            cats = [category] if category is not None else list(self._fine.keys() | self._coarse)
            for cat in cats:
                _merge_range(merged, self._fine.get(cat, {}), lo, hi, 1)
                first_minute = lo - lo % self.COARSE_S
                _merge_range(merged, self._coarse.get(cat, {}), first_minute, hi, self.COARSE_S)
            if self._tracked:
                self._add_overdue(merged, category, lo, hi, time.time() if now is None else now)
        return merged

    def _add_overdue(
        self, into: _Bucket, category: str | None, lo: int, hi: int, now: float
    ) -> None:
        """Fold the overdue requests into ``into`` as timeouts of latency ``now - scheduled``
        (their lower bound). Under the lock, like the buckets they join."""
        timeout = _OUTCOME_INDEX[Outcome.TIMEOUT]
        hist = into.hist
        for outstanding in self._tracked:
            for scheduled in outstanding.overdue(category, lo, hi, now):
                latency_us, index = _latency_index(now - scheduled)
                into.count += 1
                into.overdue += 1
                into.outcomes[timeout] += 1
                hist[index] = hist.get(index, 0) + 1
                if latency_us > into.max_us:
                    into.max_us = latency_us

    def histogram(
        self, category: str | None, start: float, end: float, *, delayed: bool | None = None
    ) -> list[tuple[float, int]]:
        """The window's latency histogram: (seconds, count) per HdrHistogram bucket, ascending
        (what a drill needs to model a latency distribution, e.g. the baseline's). ``delayed``
        True keeps only the records a faulty release slowed on purpose (``delay_s``), False
        only the others (overdue requests included, at their lower bound), None all."""
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
            overdue=bucket.overdue,
        )
