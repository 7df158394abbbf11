"""Replay a drill's recording through the evaluator, offline: ``rollback-drill replay``.

A recording (:mod:`rollback_drill.recording`) holds what the monitor of one drill read. Replay
rebuilds the monitor's source from it -- the same :class:`~rollback_drill.monitor.LiveSource`,
over a :class:`~rollback_drill.records.RecordStore` and the collectors' own classes, their
series refilled with the recorded samples -- and ticks a fresh
:class:`~rollback_drill.evaluator.Evaluator` at the recorded tick times. Before tick ``k`` the
source holds exactly what the live tick ``k`` could see (the recording's tags), and each
reading counts the overdue requests the live one counted, at the live reading's wall time.

Policy and baseline:

- without ``--policy``: the policy the run used (recorded, with its time scale) and the
  recorded baseline. The decisions must then be the run's own, at the same ticks, with the same
  values: anything else is a replay defect (exit 1);
- with ``--policy P``: ``P`` at the run's time scale. The recorded baseline is kept when ``P``
  reads the same baselines (same baseline specs, the same (baseline, scope) pairs, same floor);
  else the baseline is captured again from the recording at the recorded capture time, over
  ``P``'s baseline windows (the recording holds the run's baseline windows and a margin: a
  longer window reads what was recorded). A reading the run never made (another window) counts
  the overdue requests of the same reading key in that tick, if any. Differences from the run
  are then the policy's effect, printed, not an error.

Times are printed from the moment the fault went live (the journal's ``fault ... live`` marks
kept in the recording), else from the deployment (``deployed_at``).

Clock: each tick maps its wall-clock windows onto the collectors' monotonic samples through the
clock mapping the live tick used (recorded with it since format 2); a format-1 recording maps
every tick through its one mapping (``clock``), as its run did.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from rollback_drill.baseline import Baseline, BaselineValue, needed
from rollback_drill.decisions import Decision
from rollback_drill.errors import DrillError
from rollback_drill.evaluator import Evaluator
from rollback_drill.metrics import Scope, ScopeKind
from rollback_drill.monitor import LiveSource
from rollback_drill.policy import Policy, default_policy, load_policy
from rollback_drill.recording import CAUSES, OUTCOMES, READABLE_FORMATS, undeltas, unruns
from rollback_drill.records import Outstanding, RecordStore, RequestRecord, WindowStats
from rollback_drill.signals.app_metrics import AppMetricsCollector
from rollback_drill.signals.docker_events import DockerEventsCollector
from rollback_drill.signals.docker_stats import DockerStatsCollector
from rollback_drill.signals.postgres_log import PostgresLogCollector
from rollback_drill.signals.redis_info import RedisInfoCollector
from rollback_drill.signals.series import Anchor, Clock
from rollback_drill.signals.tickets import TicketCollector

__all__ = [
    "Recording",
    "ReplayResult",
    "add_parser",
    "find_recordings",
    "load_recording",
    "replay",
]


# What the evaluator and the baseline read of a policy: kept with a recording.
EVALUATED = (
    "version",
    "plan",
    "observation_window_s",
    "time_scale",
    "baseline_min_window_s",
    "baselines",
    "ambiguities",
    "triggers",
    "matrix",
)


class ReplayError(DrillError):
    """A recording that cannot be read or replayed."""


@dataclass(frozen=True)
class Recording:
    path: Path
    data: Mapping[str, Any]

    @property
    def drill(self) -> str:
        return str(self.data["notes"].get("drill") or self.path.name)

    @property
    def properties(self) -> Mapping[str, Any]:
        return dict(self.data["notes"].get("properties") or {})

    @property
    def time_scale(self) -> float:
        return float(self.data["time_scale"])

    def policy(self) -> Policy:
        """The policy the run used, at its time scale: its rules, baselines and windows as
        recorded; the sections the evaluator does not read (rollback budgets, checklist,
        drills' levels) from the shipped policy, so that an older recording still loads."""
        recorded = self.data["policy"]
        shipped = default_policy().model_dump(mode="json")
        merged = {**shipped, **{k: v for k, v in recorded.items() if k in EVALUATED}}
        try:
            policy = Policy.model_validate(merged)
        except ValidationError as exc:
            raise ReplayError(f"{self.path}: its policy no longer loads: {exc}") from None
        return policy.from_file(f"{self.data['policy_source']} (as recorded)")

    def decisions(self) -> list[dict[str, Any]]:
        """The run's own decisions: tick index, trigger, kind, scope, value..."""
        return list(self.data["decisions"])

    @property
    def tick_times(self) -> list[float]:
        return [float(t) for t in self.data["ticks"]["now"]]

    def fault_live_at(self) -> float | None:
        """When the drill's fault went live (its first ``live`` mark), if it has one."""
        for kind, _name, _wall, data in self.data["marks"]:
            if kind == "fault" and data.get("phase") == "live" and data.get("at") is not None:
                return float(data["at"])
        return None

    def origin(self) -> float:
        """The time decisions are counted from: the fault going live, else the deployment."""
        live = self.fault_live_at()
        if live is not None:
            return live
        deployed = self.data.get("deployed_at")
        return float(deployed) if deployed is not None else self.tick_times[0]


def load_recording(path: Path) -> Recording:
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ReplayError(f"{path}: not a recording: {exc}") from None
    if not isinstance(data, dict) or data.get("format") not in READABLE_FORMATS:
        formats = " or ".join(str(f) for f in READABLE_FORMATS)
        raise ReplayError(f"{path}: not a recording of format {formats}")
    return Recording(path, data)


def find_recordings(path: Path) -> list[Path]:
    """A recording file, or every recording of a run directory (its ``recordings/``) or of the
    run whose journal (``journal.jsonl``) is given."""
    if path.is_file() and path.suffix == ".jsonl":
        path = path.parent
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(path.glob("recordings/*.json.gz")) or sorted(path.glob("*.json.gz"))
        if found:
            return found
        raise ReplayError(f"{path}: no recordings in it (recordings/*.json.gz)")
    raise ReplayError(f"{path}: no such file or directory")


# ---- the rebuilt source ----------------------------------------------------------------------
class _ReplayStore(RecordStore):
    """A record store whose readings count the overdue requests the live reading counted."""

    def __init__(self, overdue: Sequence[Sequence[Any]]) -> None:
        super().__init__()
        self.section = -1
        self.now = 0.0  # the running tick's time (readings without overdue requests)
        self._reads = 0
        self._by_ordinal: dict[tuple[int, int], tuple[tuple[Any, ...], float, dict[int, Any]]] = {}
        self._by_key: dict[tuple[Any, ...], tuple[float, dict[int, Any]]] = {}
        for section, ordinal, category, start, end, now, lists in overdue:
            key = (section, category, start, end)
            times = {int(i): v for i, v in lists.items()}
            self._by_ordinal[(section, ordinal)] = (key, now, times)
            self._by_key.setdefault(key, (now, times))
        self.current: dict[int, list[float]] = {}

    def begin(self, section: int, now: float) -> None:
        self.section, self.now, self._reads = section, now, 0

    def window(
        self, category: str | None, start: float, end: float, *, now: float | None = None
    ) -> WindowStats:
        key = (self.section, category, start, end)
        found = self._by_ordinal.get((self.section, self._reads))
        self._reads += 1
        if found is not None and found[0] == key:
            at, self.current = found[1], found[2]
        elif key in self._by_key:  # a reading in another order (another policy)
            at, self.current = self._by_key[key]
        else:
            at, self.current = self.now, {}
        try:
            return super().window(category, start, end, now=at if now is None else now)
        finally:
            self.current = {}


class _RecordedOutstanding(Outstanding):
    """A generator's outstanding requests as the recorded readings counted them."""

    __slots__ = ("_index", "_store")

    def __init__(self, store: _ReplayStore, index: int) -> None:
        self._store = store
        self._index = index

    def overdue(self, category: str | None, lo: float, hi: float, now: float) -> Iterator[float]:
        return iter(self._store.current.get(self._index, ()))


# The collectors' own classes, started without threads: their series are refilled instead.
class _Events(DockerEventsCollector):
    def _start(self) -> None:
        pass


class _Stats(DockerStatsCollector):
    def _start(self) -> None:
        pass


class _Redis(RedisInfoCollector):
    def _start(self) -> None:
        pass


class _Postgres(PostgresLogCollector):
    def _start(self) -> None:
        pass


class _Tickets(TicketCollector):
    def _start(self) -> None:
        pass

    def _close(self) -> None:
        pass


class _App(AppMetricsCollector):
    def _start(self) -> None:
        pass


_NOWHERE = httpx.MockTransport(lambda request: httpx.Response(404))


@dataclass
class _Feed:
    """The recorded items in arrival order, each with the first section that sees it."""

    tags: list[int]
    items: list[Any]
    next: int = 0

    def take(self, section: int) -> list[Any]:
        start = self.next
        while self.next < len(self.tags) and self.tags[self.next] <= section:
            self.next += 1
        return self.items[start : self.next]


def _scope(text: str) -> Scope:
    kind, _, name = text.partition(":")
    return Scope(ScopeKind(kind), name or None)


# ---- replay ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReplayResult:
    recording: Recording
    policy: Policy
    decisions: list[tuple[int, Decision]]  # (tick index, decision)
    baseline_recomputed: bool
    elapsed_s: float

    def rows(self) -> list[tuple[int, str, str, str, str, str, float | None]]:
        """(tick, trigger, kind, scope, action, severity, value) of each replayed decision."""
        return [
            (n, d.trigger_id, str(d.kind), str(d.scope), str(d.action), str(d.severity), d.value)
            for n, d in self.decisions
        ]

    def recorded_rows(self) -> list[tuple[int, str, str, str, str, str, float | None]]:
        return [
            (d["tick"], d["trigger"], d["kind"], d["scope"], d["action"], d["severity"], d["value"])
            for d in self.recording.decisions()
        ]

    @property
    def same(self) -> bool:
        """The run's own decisions, at the same ticks, with the same values and messages."""
        mine = [(*row, d.message) for row, (_, d) in zip(self.rows(), self.decisions, strict=True)]
        run = [
            (*row, d["message"])
            for row, d in zip(self.recorded_rows(), self.recording.decisions(), strict=True)
        ]
        return mine == run


def replay(recording: Recording, policy: Policy | None = None) -> ReplayResult:
    """Tick a fresh evaluator over the recording (``policy``: the run's own when None)."""
    began = time.perf_counter()
    data = recording.data
    run_policy = recording.policy()
    policy = run_policy if policy is None else policy.scaled(recording.time_scale)
    clock = _clock(data["clock"])

    store = _ReplayStore(data["overdue"])
    for index in range(int(data["outstanding"])):
        store.track(_RecordedOutstanding(store, index))
    events = _Events("replay", clock=clock).start()
    stats = _Stats("replay", clock=clock)
    redis = _Redis(6379, clock=clock)
    tickets = _Tickets(clock=clock)
    # never scraped: a transport that answers nothing (and costs no TLS context to build)
    app = _App(["http://127.0.0.1/metrics"], clock=clock, transport=_NOWHERE)
    postgres = _Postgres("replay", "replay", clock=clock).start()
    collectors = {
        "events": events,
        "stats": stats,
        "redis": redis,
        "tickets": tickets,
        "app": app,
        "postgres": postgres,
    }
    # the app's failure-cause header, else black-box (recorded since; before, always the header)
    cause_header = bool(data.get("cause_header", True))
    counters = data["cache_counters"]
    source = LiveSource(
        store,
        events=events,
        stats=stats,
        redis=redis,
        tickets=tickets,
        app=app if counters else None,
        cache_counters=tuple(counters) if counters else None,
        clock=clock,
        services=data["services"],
        cause_header=cause_header,
        postgres=None if cause_header else postgres,
    )
    try:
        feeds = _feeds(data, collectors, source)
        baseline, recompute = _baseline(data, run_policy, policy)
        ticks = data["ticks"]
        sections = undeltas(ticks["section"])
        not_before = unruns(ticks["not_before"])
        running = unruns(ticks["events_running"])
        anchors = _anchors(ticks)
        base = data["baseline"]
        evaluator: Evaluator | None = None
        out: list[tuple[int, Decision]] = []
        if recompute and base is not None:
            _fill(feeds, int(base["section"]))
            store.begin(int(base["section"]), float(base["at"]))
            if "anchor" in base:
                source.pin(float(base["at"]), Anchor(*map(float, base["anchor"])))
            source.not_before = None
            baseline = Baseline.capture(policy, source, float(base["at"]))
        evaluator = Evaluator(policy, baseline, deployed_at=data["deployed_at"])
        for n, (section, now) in enumerate(zip(sections, recording.tick_times, strict=True)):
            _fill(feeds, section)
            store.begin(section, now)
            if anchors is not None:
                source.pin(now, anchors[n])
            source.not_before = not_before[n]
            source.events = events if running[n] else None
            out.extend((n, d) for d in evaluator.tick(now, source))
    finally:
        for c in collectors.values():
            c.stop()
    return ReplayResult(recording, policy, out, recompute, time.perf_counter() - began)


def _clock(anchors: Sequence[float]) -> Clock:
    """The run's clock, stopped at its first mapping: a reading at a time with no recorded
    mapping (format 1, or a replayed baseline another policy reads) maps through that one."""
    mono, wall = float(anchors[0]), float(anchors[1])
    return Clock(monotonic=lambda: mono, wall=lambda: wall)


def _anchors(ticks: Mapping[str, Any]) -> list[Anchor] | None:
    """Each tick's recorded clock mapping (format 2), None when the recording has none."""
    if "anchor_monotonic" not in ticks:
        return None
    return [
        Anchor(float(m), float(w))
        for m, w in zip(ticks["anchor_monotonic"], ticks["anchor_wall"], strict=True)
    ]


def _feeds(
    data: Mapping[str, Any], collectors: Mapping[str, Any], source: LiveSource
) -> list[tuple[_Feed, Any]]:
    """One feed per kind of recorded item, with the function that appends one item."""
    rec = data["records"]
    categories = rec["categories"]
    seconds = undeltas(rec["second"])
    rows = [
        RequestRecord(
            category=categories[c],
            scheduled=float(s),
            started=float(s),
            ended=float(s),
            latency_s=(us + 0.5) / 1e6,  # the store takes int(latency_s * 1e6): ``us`` again
            outcome=OUTCOMES[o],
            failure_cause=CAUSES[cause],
        )
        for s, c, o, us, cause in zip(
            seconds, rec["category"], rec["outcome"], rec["latency_us"], rec["cause"], strict=True
        )
    ]
    store = source.records
    series = data["series"]
    table = series["table"]
    samples = list(zip(series["series"], series["t"], series["v"], strict=True))

    def sample(item: tuple[int, float, float]) -> None:
        kind, name, labels = table[item[0]]
        collectors[kind].series.append(name, item[1], item[2], **labels)

    feeds: list[tuple[_Feed, Any]] = [
        (_Feed(undeltas(rec["tag"]), rows), store.append),
        (_Feed(undeltas(series["tag"]), samples), sample),
    ]
    for kind in ("integrity", "security"):
        found = data["findings"][kind]
        findings = getattr(source, kind)
        feeds.append(
            (
                _Feed([f[0] for f in found], found),
                lambda f, findings=findings: findings.add(int(f[2]), float(f[1])),
            )
        )
    return feeds


def _fill(feeds: list[tuple[_Feed, Any]], section: int) -> None:
    for feed, append in feeds:
        for item in feed.take(section):
            append(item)


def _baseline(data: Mapping[str, Any], run: Policy, policy: Policy) -> tuple[Baseline, bool]:
    """The recorded baseline when ``policy`` reads the same baselines as the run, else an empty
    one to be captured again (True)."""
    base = data["baseline"]
    values = [] if base is None else base["values"]
    same = (
        needed(run) == needed(policy)
        and [b.model_dump() for b in run.baselines] == [b.model_dump() for b in policy.baselines]
        and run.baseline_min_window_s == policy.baseline_min_window_s
    )
    if same or base is None:
        recorded = [BaselineValue(b, _scope(s), v, n, p) for b, s, v, n, p in values]
        return Baseline(recorded), False
    return Baseline(()), True


# ---- the command -------------------------------------------------------------------------------
def describe(result: ReplayResult) -> list[str]:
    """One line per replayed decision, its time since the fault went live, vs the run's."""
    rec = result.recording
    origin = rec.origin()
    since = "fault live" if rec.fault_live_at() is not None else "deployment"
    run_rows = result.recorded_rows()
    run_set = set(run_rows)
    lines = [
        f"{rec.drill} ({rec.path.name}): {len(rec.tick_times)} ticks, time scale "
        f"{rec.time_scale:g}, policy {result.policy.source}"
        + (", baseline captured again from the recording" if result.baseline_recomputed else "")
    ]
    for row, (_, d) in zip(result.rows(), result.decisions, strict=True):
        mark = "same as the run" if row in run_set else "the run did not decide this"
        lines.append(
            f"  t{d.time - origin:+8.1f} s (since {since}) tick {row[0]:4d}  {d.trigger_id}: "
            f"{d.kind} [{d.severity}, {d.action}] at {d.scope}, value {d.value} -- {mark}"
        )
    mine = set(result.rows())
    for row in run_rows:
        if row not in mine:
            lines.append(
                f"  tick {row[0]:4d}  {row[1]}: {row[2]} at {row[3]} -- decided by the run, "
                "not by the replay"
            )
    verdict = "yes" if result.same else "NO"
    lines.append(
        f"  same decisions at the same ticks as the run: {verdict}; "
        f"replayed in {result.elapsed_s * 1000:.0f} ms"
    )
    return lines


def run(args: argparse.Namespace) -> int:
    try:
        policy = None if args.policy is None else load_policy(args.policy)
        paths = find_recordings(args.path)
        results = [replay(load_recording(p), policy) for p in paths]
    except DrillError as exc:
        print(f"rollback-drill: {exc}", file=sys.stderr)
        return exc.exit_code
    for result in results:
        print("\n".join(describe(result)))
    if policy is None and not all(r.same for r in results):
        print("rollback-drill: a replay decided otherwise than its run", file=sys.stderr)
        return 1
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """The ``replay`` subcommand (``subparsers``: from ``ArgumentParser.add_subparsers``)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "replay",
        help="replay a drill's recording through the policy, offline",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    p.add_argument(
        "path", type=Path, help="a recording (.json.gz), a run's report directory or its journal"
    )
    p.add_argument(
        "--policy",
        type=Path,
        default=None,
        help="policy file (default: the one the run used, as recorded)",
    )
    p.set_defaults(func=run)
    return p
