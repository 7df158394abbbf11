"""A drill's recording: exactly what the monitor read, compact, so that a replay decides the same.

:class:`Recorder` sits beside a :class:`~rollback_drill.monitor.LiveSource` while a drill runs
and keeps, in memory, the inputs of every reading and decision:

- the load's request records, as the record store files them (completion second, category,
  outcome, latency in microseconds, connection-failure cause): nothing else of a record is read;
- the samples of the collectors' series the monitor reads (``restarts``, ``memory_ratio``,
  Redis ``keyspace_hits``/``keyspace_misses``, the app's cache counters, ``tickets``; without
  the app's failure-cause header, the black-box connection-failure series too: PostgreSQL's
  log ``connection_failures``, Redis ``rejected_connections``/``unreachable``/
  ``own_rejections``), whether the header was read (``cause_header``), and the probes'
  findings (integrity, security);
- the requests still outstanding past their deadline that a reading counted (``Outstanding``:
  the generator's state at that moment, which no record keeps), with the reading's wall time;
- the baseline (its values, and when and how it was read), the policy with its time scale,
  ``deployed_at``, each tick's time and ``not_before``, and the decisions made;
- the clock mapping (monotonic, wall) each tick's readings mapped their windows through onto
  the collectors' monotonic samples (``LiveSource.anchor_at``), and the baseline's: taken afresh
  for each, since the wall clock may run at another rate than the monotonic one (format 2;
  a format-1 recording has one mapping, ``clock``, taken when the process started);
- the drill's name, its JUnit properties (the trigger it drills) and its journal's fault marks.

Exactness. The monitor reads live data while the load and the collectors keep appending. Each
tick (and the baseline's capture) is a *section* that holds the recorder's gate: nothing is
appended while a section reads (a collector's thread waits; the load's records are queued and
appended when the section ends, so its event loop never waits), so all of a tick's readings
see the same data, and every item appended is tagged with the number of sections begun before
it. A replay loads exactly the
items tagged ``<= k`` before section ``k``: it sees what the live tick saw, to the request, even
a sample stamped before a tick but appended after it (a scrape's answer, a Docker event).
The gate is held for one tick's readings (about a millisecond, once a second).

:meth:`Recorder.write` stores it as one gzip-compressed JSON file (columns, deltas), trimmed to
the windows replay needs; :mod:`rollback_drill.replay` reads it back.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollback_drill.baseline import Baseline
from rollback_drill.decisions import Decision
from rollback_drill.monitor import Findings, LiveSource
from rollback_drill.policy import Policy
from rollback_drill.records import (
    DB_CONNECTION,
    REDIS_CONNECTION,
    Outcome,
    Outstanding,
    RecordStore,
    RequestRecord,
    WindowStats,
    _latency_index,
)
from rollback_drill.signals.base import Collector
from rollback_drill.signals.series import Anchor, SeriesSet, series_key

if TYPE_CHECKING:
    from rollback_drill.evaluator import Evaluator
    from rollback_drill.journal import Event, Journal

__all__ = ["FORMAT", "Recorder", "recording_path"]

FORMAT = 2
READABLE_FORMATS = (1, 2)  # 1: no clock mapping per tick (every tick maps through ``clock``)
OUTCOMES = tuple(Outcome)
CAUSES = (None, DB_CONNECTION, REDIS_CONNECTION)  # the causes the store counts
# Margin kept around the windows replay needs (seconds): a record is filed under its whole
# second, and a counter's increase starts from the last sample before its window.
MARGIN_S = 5.0

# The series each collector's readings use (LiveSource.read); the app's are its cache counters.
READ_SERIES = {
    "events": ("restarts",),
    "stats": ("memory_ratio",),
    "redis": ("keyspace_hits", "keyspace_misses"),
    "tickets": ("tickets",),
    "postgres": ("connection_failures",),
}
# ... and those the black-box connection-failure readings add (``LiveSource.cause_header``
# False: the app names no failure cause)
BLACK_BOX_SERIES = {"redis": ("rejected_connections", "unreachable", "own_rejections")}


class Recorder:
    """Keeps what the monitor of one drill reads (module docstring); thread-safe."""

    def __init__(self) -> None:
        self._gate = threading.Lock()
        self._holder: int | None = None  # the thread in a section
        self._begun = 0  # sections begun: the tag of what is appended now
        self._section = -1  # the section running
        # records: (tag, second, category, outcome index, latency us, cause index)
        self.records: list[tuple[int, int, str, int, int, int]] = []
        self.series: dict[tuple[str, str], int] = {}  # (collector, series key) -> index
        self.series_table: list[tuple[str, str, dict[str, str]]] = []
        self.samples: list[tuple[int, int, float, float]] = []  # (tag, series, t, value)
        self.findings: dict[str, list[tuple[int, float, int]]] = {"integrity": [], "security": []}
        self.outstanding = 0  # generators' Outstanding tracked so far
        # readings in a section that counted overdue requests: (section, the reading's ordinal
        # in its section, category, start, end, the reading's wall time, {outstanding: times})
        self.overdue: list[
            tuple[int, int, str | None, float, float, float, dict[int, list[float]]]
        ] = []
        self._reads = 0  # readings of the store in the running section
        self._read: dict[int, list[float]] | None = None
        self._read_now = 0.0
        self.ticks: list[tuple[int, float, float | None, bool]] = []  # section, now, nb, events
        self.tick_anchors: list[Anchor] = []  # the clock mapping of each tick's readings
        self.decisions: list[tuple[int, Decision]] = []  # (tick index, decision)
        self.baseline: dict[str, Any] | None = None
        self.policy: Policy | None = None
        self.deployed_at: float | None = None
        self.source: LiveSource | None = None
        self.notes: dict[str, Any] = {}
        self.tick_s: list[float] = []  # each tick's duration under the gate (overhead)
        self._store: RecordingStore | None = None
        # records that arrived while the gate was taken: the load's event loop never waits
        self._pending: deque[tuple[RecordingStore, RequestRecord]] = deque()

    # ---- wiring ------------------------------------------------------------------------------
    def store(self, **kwargs: Any) -> RecordingStore:
        """A record store whose appends and readings are recorded."""
        self._store = RecordingStore(self, **kwargs)
        return self._store

    def attach(self, source: LiveSource) -> None:
        """Record ``source``'s collectors and findings (before the collectors start)."""
        self.source = source
        black_box = {} if source.cause_header else BLACK_BOX_SERIES
        wanted: list[tuple[str, Collector | None, tuple[str, ...]]] = [
            ("events", source.events, READ_SERIES["events"]),
            ("stats", source.stats, READ_SERIES["stats"]),
            ("redis", source.redis, READ_SERIES["redis"] + black_box.get("redis", ())),
            ("tickets", source.tickets, READ_SERIES["tickets"]),
            ("app", source.app, tuple(source.cache_counters or ())),
            ("postgres", source.postgres, READ_SERIES["postgres"]),
        ]
        for kind, collector, names in wanted:
            if collector is not None and names:
                retention = collector.series.retention
                collector.series = RecordingSeriesSet(self, kind, names, retention=retention)
        source.integrity = RecordedFindings(self, "integrity")
        source.security = RecordedFindings(self, "security")

    def note(self, **data: Any) -> None:
        """The drill's name and properties (what it drilled), kept with the recording."""
        self.notes.update(data)

    # ---- sections ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def section(self) -> Iterator[int]:
        """Hold the gate: appends wait; yields this section's index."""
        with self._gate:
            self._drain()
            index = self._section = self._begun
            self._begun += 1
            self._reads = 0
            self._holder = threading.get_ident()
            try:
                yield index
            finally:
                self._holder = None
                self._drain()  # the records that arrived meanwhile: seen from the next section

    def _drain(self) -> None:
        """Append the records that found the gate taken (call with the gate held)."""
        while self._pending:
            store, record = self._pending.popleft()
            RecordStore.append(store, record)
            self._record(record)

    def _in_section(self) -> bool:
        return self._holder == threading.get_ident()

    def capture_baseline(self, policy: Policy, source: LiveSource, at: float) -> Baseline:
        """``Baseline.capture`` in a section, recorded."""
        with self.section() as index:
            anchor = source.anchor_at(at)
            baseline = Baseline.capture(policy, source, at)
        self.policy = policy
        self.baseline = {
            "section": index,
            "at": at,
            "anchor": list(anchor),
            "values": [
                [v.baseline_id, str(v.scope), v.value, v.samples, v.problem]
                for v in baseline.values()
            ],
        }
        return baseline

    def monitor_started(self, policy: Policy, deployed_at: float | None) -> None:
        self.policy = policy
        self.deployed_at = deployed_at

    def tick(self, evaluator: Evaluator, source: LiveSource, now: float | None) -> list[Decision]:
        """One monitor tick in a section (``now`` None: the wall clock once the gate is held)."""
        with self.section() as index:
            began = time.perf_counter()
            at = time.time() if now is None else now
            anchor = source.anchor_at(at)
            new = evaluator.tick(at, source)
            events_running = source.events is not None and source.events.running
            self.tick_s.append(time.perf_counter() - began)
        n = len(self.ticks)
        self.ticks.append((index, at, source.not_before, events_running))
        self.tick_anchors.append(anchor)
        self.decisions.extend((n, d) for d in new)
        return new

    # ---- appends (any thread) ---------------------------------------------------------------
    def _record(self, record: RequestRecord) -> None:
        cause = CAUSES.index(record.failure_cause) if record.failure_cause in CAUSES[1:] else 0
        self.records.append(
            (
                self._begun,
                int(record.ended),
                record.category,
                OUTCOMES.index(record.outcome),
                _latency_index(record.latency_s)[0],
                cause,
            )
        )

    def _sample(self, kind: str, name: str, labels: dict[str, str], t: float, v: float) -> None:
        key = (kind, series_key(name, labels))
        index = self.series.get(key)
        if index is None:
            index = self.series[key] = len(self.series_table)
            self.series_table.append((kind, name, dict(labels)))
        self.samples.append((self._begun, index, t, v))

    # ---- writing -----------------------------------------------------------------------------
    def to_data(self, journal: Journal | None = None) -> dict[str, Any]:
        """The recording as JSON-able data, trimmed to what replay needs."""
        source = self.source
        if source is None or self.policy is None:
            raise ValueError("nothing to record: no source attached or no baseline captured")
        spans = self._spans()
        wall_spans = _union([span for span, _ in spans])
        clock = source.clock
        mono_spans = _union(
            [(clock.from_wall(a, anchor), clock.from_wall(b, anchor)) for (a, b), anchor in spans]
        )
        records = self._trimmed_records(wall_spans)
        samples = self._trimmed_samples(mono_spans)
        return {
            "format": FORMAT,
            "notes": self.notes,
            "policy": self.policy.model_dump(mode="json"),
            "policy_source": self.policy.source,
            "time_scale": self.policy.time_scale,
            "clock": [clock.anchor_monotonic, clock.anchor_wall],
            "services": dict(source.services),
            "cache_counters": list(source.cache_counters) if source.cache_counters else None,
            "cause_header": source.cause_header,
            "baseline": self.baseline,
            "deployed_at": self.deployed_at,
            "ticks": {
                "section": _deltas([t[0] for t in self.ticks]),
                "now": [t[1] for t in self.ticks],
                "not_before": _runs([t[2] for t in self.ticks]),
                "events_running": _runs([t[3] for t in self.ticks]),
                "anchor_monotonic": [a.monotonic for a in self.tick_anchors],
                "anchor_wall": [a.wall for a in self.tick_anchors],
            },
            "decisions": [_decision(n, d) for n, d in self.decisions],
            "records": _record_columns(records),
            "outstanding": self.outstanding,
            "overdue": [_overdue(*entry) for entry in self.overdue],
            "series": {
                "table": [list(row) for row in self.series_table],
                "tag": _deltas([s[0] for s in samples]),
                "series": [s[1] for s in samples],
                "t": [s[2] for s in samples],
                "v": [s[3] for s in samples],
            },
            "findings": {k: [list(f) for f in v] for k, v in self.findings.items()},
            "marks": _marks(journal),
            "overhead": {
                "ticks": len(self.tick_s),
                "tick_ms_mean": round(1000 * sum(self.tick_s) / max(len(self.tick_s), 1), 3),
                "tick_ms_max": round(1000 * max(self.tick_s, default=0.0), 3),
                "records_seen": len(self.records),
                "samples_seen": len(self.samples),
            },
        }

    def write(self, path: Path, journal: Journal | None = None) -> dict[str, float]:
        """Write the recording (gzip JSON); returns its size and the time writing took."""
        began = time.perf_counter()
        with self._gate:
            self._drain()
        data = self.to_data(journal)
        text = json.dumps(data, separators=(",", ":"))
        path.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(path, "wt", encoding="utf-8", compresslevel=9) as fh:
            fh.write(text)
        return {
            "bytes": path.stat().st_size,
            "write_ms": round(1000 * (time.perf_counter() - began), 1),
            "records": len(data["records"]["second"]),
            "samples": len(data["series"]["t"]),
            "ticks": len(self.ticks),
        }

    def _spans(self) -> list[tuple[tuple[float, float], Anchor]]:
        """The wall-time spans the recorded readings reach into (any rule's window), each with
        the clock mapping its readings used."""
        assert self.policy is not None
        policy = self.policy
        spans = []
        if self.baseline is not None:
            at = float(self.baseline["at"])
            span = (at - policy.longest_baseline_window_s() - MARGIN_S, at + MARGIN_S)
            spans.append((span, Anchor(*self.baseline["anchor"])))
        longest = max(policy.scale(r.window_s) for r in policy.rules())
        for (_, now, not_before, _), anchor in zip(self.ticks, self.tick_anchors, strict=True):
            start = now - longest
            if not_before is not None:
                start = max(start, not_before)
            spans.append(((start - MARGIN_S, now + MARGIN_S), anchor))
        return spans

    def _trimmed_records(
        self, spans: list[tuple[float, float]]
    ) -> list[tuple[int, int, str, int, int, int]]:
        """The records inside the spans. Trimming changes nothing the store answers while the
        whole run fits in its fine retention (no compaction into minutes); else all are kept."""
        if not self.records:
            return []
        seconds = [r[1] for r in self.records]
        retention = self._store.fine_retention_s if self._store is not None else 1800
        if max(seconds) - min(seconds) >= retention - 120:
            return list(self.records)
        return [r for r in self.records if _inside(r[1], spans, pad=1.0)]

    def _trimmed_samples(
        self, spans: list[tuple[float, float]]
    ) -> list[tuple[int, int, float, float]]:
        """The samples inside the spans, and each series' last sample before each span (a
        counter's increase starts from it)."""
        keep = [False] * len(self.samples)
        last_before: dict[tuple[int, int], int] = {}
        for i, (_, series, t, _) in enumerate(self.samples):
            if _inside(t, spans):
                keep[i] = True
                continue
            for j, (a, _) in enumerate(spans):
                if t <= a:
                    prev = last_before.get((series, j))
                    if prev is None or self.samples[prev][2] <= t:
                        last_before[(series, j)] = i
                    break
        for i in last_before.values():
            keep[i] = True
        return [s for s, k in zip(self.samples, keep, strict=True) if k]


class RecordingStore(RecordStore):
    """A :class:`RecordStore` whose appends wait for the recorder's gate and are recorded, and
    whose readings in a section record the overdue requests they counted."""

    def __init__(self, recorder: Recorder, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._recorder = recorder
        self._logged: dict[int, _LoggedOutstanding] = {}

    @property
    def fine_retention_s(self) -> int:
        return self._fine_retention

    def append(self, record: RequestRecord) -> None:
        """Appended now, or (the gate taken: a tick is reading) queued and appended when the
        gate is free: the load's event loop never waits for a tick."""
        rec = self._recorder
        if not rec._gate.acquire(blocking=False):
            rec._pending.append((self, record))
            return
        try:
            rec._drain()
            super().append(record)
            rec._record(record)
        finally:
            rec._gate.release()

    def _drain_if_free(self) -> None:
        rec = self._recorder
        if rec._pending and rec._gate.acquire(blocking=False):
            try:
                rec._drain()
            finally:
                rec._gate.release()

    def track(self, outstanding: Outstanding) -> None:
        rec = self._recorder
        logged = self._logged[id(outstanding)] = _LoggedOutstanding(
            outstanding, rec, rec.outstanding
        )
        rec.outstanding += 1
        super().track(logged)

    def untrack(self, outstanding: Outstanding) -> None:
        super().untrack(self._logged.pop(id(outstanding), outstanding))

    def window(
        self, category: str | None, start: float, end: float, *, now: float | None = None
    ) -> WindowStats:
        rec = self._recorder
        if not rec._in_section():
            self._drain_if_free()
            return super().window(category, start, end, now=now)
        rec._read = {}
        ordinal = rec._reads
        rec._reads += 1
        try:
            return super().window(category, start, end, now=now)
        finally:
            if rec._read:
                entry = (rec._section, ordinal, category, start, end, rec._read_now, rec._read)
                rec.overdue.append(entry)
            rec._read = None


class _LoggedOutstanding(Outstanding):
    """A generator's :class:`Outstanding`, as the store reads it, with what each reading in a
    section counted (the generator's state then is kept nowhere else)."""

    __slots__ = ("_index", "_recorder", "inner")

    def __init__(self, inner: Outstanding, recorder: Recorder, index: int) -> None:
        self.inner = inner
        self._recorder = recorder
        self._index = index

    def overdue(self, category: str | None, lo: float, hi: float, now: float) -> Iterator[float]:
        got = list(self.inner.overdue(category, lo, hi, now))
        rec = self._recorder
        if got and rec._read is not None and rec._in_section():
            rec._read_now = now
            rec._read[self._index] = got
        return iter(got)


class RecordingSeriesSet(SeriesSet):
    """A collector's series; the ones the monitor reads are recorded, appended under the gate."""

    def __init__(
        self, recorder: Recorder, kind: str, names: Sequence[str], *, retention: float | None
    ) -> None:
        super().__init__(retention=retention)
        self._recorder = recorder
        self._kind = kind
        self._names = frozenset(names)

    def append(self, name: str, t: float, value: float, /, **labels: str) -> None:
        if name not in self._names:
            super().append(name, t, value, **labels)
            return
        rec = self._recorder
        with rec._gate:
            super().append(name, t, value, **labels)
            rec._sample(self._kind, name, labels, t, value)


class RecordedFindings(Findings):
    """The probes' findings, appended under the gate and recorded."""

    def __init__(self, recorder: Recorder, kind: str) -> None:
        super().__init__()
        self.recorder = recorder
        self.kind = kind

    def add(self, found: int, wall: float | None = None) -> None:
        rec = self.recorder
        at = time.time() if wall is None else wall
        with rec._gate:
            super().add(found, at)
            rec.findings[self.kind].append((rec._begun, at, found))


# ---- where and how ---------------------------------------------------------------------------
def recording_path(journal: Journal, drill: str | None = None) -> Path | None:
    """``recordings/<drill>.json.gz`` beside the run's journal (None without a journal file);
    ``drill``: the test's node id, default the journal's last drill."""
    if journal.path is None:
        return None
    if drill is None:
        started = [
            e for e in journal.events if e.kind == "drill" and e.data.get("phase") == "start"
        ]
        drill = started[-1].name if started else "drill"
    return journal.path.parent / "recordings" / f"{slug(drill)}.json.gz"


def slug(nodeid: str) -> str:
    """A file name of a node id: ``drills/test_triggers.py::test_x`` -> ``test_triggers-test_x``."""
    base = nodeid.split("/")[-1].replace(".py::", "-").replace("::", "-")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", base).strip("_") or "drill"


def _marks(journal: Journal | None) -> list[list[Any]]:
    """The journal's markers and fault events of the last drill: (kind, name, wall, data)."""
    if journal is None:
        return []
    events = list(journal.events)
    begins = [
        i for i, e in enumerate(events) if e.kind == "drill" and e.data.get("phase") == "start"
    ]
    first = begins[-1] if begins else 0
    out = []
    for e in events[first:]:
        if e.kind == "marker" or e.kind == "fault":
            data = {k: v for k, v in e.data.items() if isinstance(v, str | int | float | None)}
            out.append([e.kind, e.name, e.wall, data])
    return out


def _drill_start(event: Event) -> bool:
    return event.kind == "drill" and event.data.get("phase") == "start"


def _decision(n: int, d: Decision) -> dict[str, Any]:
    return {
        "tick": n,
        "time": d.time,
        "trigger": d.trigger_id,
        "kind": str(d.kind),
        "scope": str(d.scope),
        "action": str(d.action),
        "severity": str(d.severity),
        "value": d.value,
        "message": d.message,
    }


def _record_columns(records: list[tuple[int, int, str, int, int, int]]) -> dict[str, Any]:
    categories = sorted({r[2] for r in records})
    index = {c: i for i, c in enumerate(categories)}
    return {
        "categories": categories,
        "tag": _deltas([r[0] for r in records]),
        "second": _deltas([r[1] for r in records]),
        "category": [index[r[2]] for r in records],
        "outcome": [r[3] for r in records],
        "latency_us": [r[4] for r in records],
        "cause": [r[5] for r in records],
    }


def _overdue(
    section: int,
    ordinal: int,
    category: str | None,
    start: float,
    end: float,
    now: float,
    read: Mapping[int, list[float]],
) -> list[Any]:
    return [section, ordinal, category, start, end, now, {str(k): v for k, v in read.items()}]


def _deltas(values: Sequence[int]) -> list[int]:
    out, prev = [], 0
    for v in values:
        out.append(v - prev)
        prev = v
    return out


def undeltas(values: Sequence[int]) -> list[int]:
    out, total = [], 0
    for v in values:
        total += v
        out.append(total)
    return out


def _runs(values: Sequence[Any]) -> list[list[Any]]:
    """Run-length: [[value, count], ...]."""
    out: list[list[Any]] = []
    for v in values:
        if out and out[-1][0] == v:
            out[-1][1] += 1
        else:
            out.append([v, 1])
    return out


def unruns(runs: Sequence[Sequence[Any]]) -> list[Any]:
    return [v for v, n in runs for _ in range(n)]


def _union(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _inside(t: float, spans: list[tuple[float, float]], pad: float = 0.0) -> bool:
    return any(a - pad <= t <= b + pad for a, b in spans)


# ---- the committed set -----------------------------------------------------------------------
def collect(junit: Path, run_dir: Path, dest: Path) -> list[Path]:
    """Copy into ``dest`` the recordings under ``run_dir`` of the drills that passed in the
    JUnit file ``junit`` (``make recordings``): a failed drill's decisions are not the plan's."""
    import shutil
    import xml.etree.ElementTree as ET

    passed = set()
    for case in ET.parse(junit).getroot().iter("testcase"):
        if not any(child.tag in ("failure", "error", "skipped") for child in case):
            module = case.get("classname", "").rsplit(".", 1)[-1]
            passed.add(slug(f"{module}.py::{case.get('name', '')}"))
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    for path in sorted(run_dir.glob("*/recordings/*.json.gz")):
        if path.name.removesuffix(".json.gz") in passed:
            copied.append(Path(shutil.copy2(path, dest / path.name)))
    return copied


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rollback_drill.recording JUNIT RUN_DIR DEST``: :func:`collect`."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3:
        print("usage: python -m rollback_drill.recording JUNIT RUN_DIR DEST", file=sys.stderr)
        return 2
    copied = collect(Path(args[0]), Path(args[1]), Path(args[2]))
    for path in copied:
        print(f"{path} ({path.stat().st_size} bytes)")
    print(f"{len(copied)} recordings in {args[2]}")
    return 0 if copied else 1


if __name__ == "__main__":
    raise SystemExit(main())
