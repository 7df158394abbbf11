"""One drill's live instruments around a stack: load, collectors, baseline, monitor.

``DrillRun`` is the synchronous harness every whole drill uses (and a script can use too):

    with DrillRun(stack, policy, journal, rate=40) as run:   # load + collectors start
        run.capture_baseline()                               # pre-hybrid, before any fault
        run.deploy("hybrid")                                 # real deployment, monitor on
        decision = run.monitor.wait_for_decision(...)
    # leaving the block stops monitor, load and collectors, whatever happened

The load generator is asyncio; it runs on its own event loop in a thread here, controlled
thread-safely. The policy handed in is already time-scaled (``Policy.scaled``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any, TypeVar

from rollback_drill.backup import BackupSet, take_backups
from rollback_drill.baseline import Baseline
from rollback_drill.deploy import deploy_release, guarded_deploy
from rollback_drill.faults.probes import ProbeLoop, probe_loops
from rollback_drill.journal import Journal
from rollback_drill.ledger import Ledger
from rollback_drill.load import LoadConfig, LoadGenerator, LoadStats
from rollback_drill.monitor import (
    LiveSource,
    Monitor,
    app_metrics_source,
    connection_failure_sources,
)
from rollback_drill.pauses import GcPauses
from rollback_drill.policy import Policy
from rollback_drill.recording import Recorder, recording_path
from rollback_drill.records import RecordStore
from rollback_drill.report import Timeline
from rollback_drill.signals.access_log import AccessEntry, AccessLog
from rollback_drill.signals.docker_events import DockerEventsCollector
from rollback_drill.signals.docker_stats import DockerStatsCollector
from rollback_drill.signals.redis_info import RedisInfoCollector
from rollback_drill.signals.tickets import TicketCollector
from rollback_drill.stack import Stack
from rollback_drill.traffic import Category
from rollback_drill.wait import wait_for, wait_until

T = TypeVar("T")


class BackgroundLoad:
    """The open-model load generator on its own event loop thread, for synchronous drills."""

    def __init__(
        self, config: LoadConfig, store: RecordStore | None = None, ledger: Ledger | None = None
    ) -> None:
        self.generator = LoadGenerator(config, store=store, ledger=ledger)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="drill-load", daemon=True
        )
        self._stats: LoadStats | None = None
        self._stopped = False

    @property
    def ledger(self) -> Ledger:
        return self.generator.ledger

    def start(self) -> BackgroundLoad:
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.generator.start(), self._loop).result(timeout=60)
        except BaseException:
            self._close_loop()
            raise
        return self

    def stop(self) -> LoadStats | None:
        """Stop sending (idempotent); the run's counters, or None if it never started."""
        if not self._stopped:
            self._stopped = True
            future = asyncio.run_coroutine_threadsafe(self.generator.stop(), self._loop)
            try:
                self._stats = future.result(timeout=60)
            finally:
                self._close_loop()
        return self._stats

    def _close_loop(self) -> None:
        self._stopped = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    def enable(self, category: Category) -> None:
        self._loop.call_soon_threadsafe(self.generator.enable, category)

    def disable(self, category: Category) -> None:
        self._loop.call_soon_threadsafe(self.generator.disable, category)

    def wait_for_writes(self, count: int, *, after: float = 0.0, timeout_s: float = 60.0) -> int:
        """Poll until ``count`` writes were acknowledged at or after ``after`` (epoch s)."""
        return wait_for(
            lambda: len(self.ledger.acked_after(after)),
            lambda n: n >= count,
            timeout_s=timeout_s,
            what=f"{count} acknowledged writes from the load",
            interval_s=0.2,
        )


class DrillRun:
    def __init__(
        self,
        stack: Stack,
        policy: Policy,
        journal: Journal,
        *,
        rate: float = 40.0,
        tick_s: float = 1.0,
    ) -> None:
        self.stack = stack
        self.policy = policy
        self.journal = journal
        self.rate = rate
        self.tick_s = tick_s
        self.recorder = Recorder()  # what the monitor reads, for replay (``recording``)
        self.store = self.recorder.store()
        self.ledger = Ledger()
        self.timeline = Timeline()
        s = stack.target.services
        self.events = DockerEventsCollector(stack.project)
        self.stats = DockerStatsCollector(stack.project, (s.wsgi, s.asgi))
        self.redis = RedisInfoCollector(stack.port(s.redis, stack.target.ports.redis))
        self.tickets = TicketCollector()
        self.source = LiveSource(
            self.store,
            events=self.events,
            stats=self.stats,
            redis=self.redis,
            tickets=self.tickets,
            services=stack.target.services.model_dump(),
        )
        self.app_metrics = app_metrics_source(self.source, stack.target, stack.base_url)
        # no failure-cause header: DB connection failures from PostgreSQL's own log
        self.postgres_log = connection_failure_sources(self.source, stack.target, stack.project)
        self.recorder.attach(self.source)
        # nginx's own log: the instrument that proves a fault's level (None: not on this target)
        spec = stack.target.signals.access_log
        self.access_log = (
            None
            if spec is None
            else AccessLog(
                lambda: stack.containers(stack.target.service(spec.service)),
                spec.format,
                stack.target.traffic,
            )
        )
        self.access_baseline: list[AccessEntry] = []  # its entries of the baseline window
        self.baseline: Baseline | None = None
        self.baseline_at = 0.0  # when the baseline was captured (its windows end there)
        self.backups: BackupSet | None = None
        self.monitor: Monitor | None = None
        self.load: BackgroundLoad | None = None
        self.gc = GcPauses()
        self._probe_loops: list[ProbeLoop] = []  # running (``probes``): paused by ``deploy``
        self._stack = contextlib.ExitStack()

    # ---- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> DrillRun:
        try:
            self.gc.start()
            self._stack.callback(self._write_recording)  # last: after the monitor stopped
            self._stack.callback(self._journal_gc)
            collectors = (self.events, self.stats, self.redis, self.tickets, self.app_metrics)
            for collector in (*collectors, self.postgres_log):
                if collector is None:
                    continue
                collector.start()
                self._stack.callback(collector.stop)
            config = LoadConfig(
                self.stack.base_url,
                rate=self.rate,
                user=self.stack.workspace.user,
                profile=self.stack.target.traffic,
                staff=self.stack.workspace.admin,
                disabled=frozenset({Category.WEBSOCKET}),  # pre-hybrid cannot serve WebSockets
            )
            self.load = BackgroundLoad(config, self.store, self.ledger)
            self._stack.callback(self.load.stop)
            self.load.start()
            self.mark("load started")
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()

    def _journal_gc(self) -> None:
        """The drill process's garbage-collection pauses (the instrument's own stalls: the
        load measures every request due during one as late) into the journal."""
        self.gc.stop()
        for pause in self.gc.pauses:
            self.journal.event(
                "instrument",
                "gc pause",
                at=pause.at,
                duration_ms=round(pause.duration_s * 1000, 1),
                generation=pause.generation,
                collected=pause.collected,
            )
        self.journal.event(
            "instrument",
            "gc",
            collections=self.gc.collections,
            longest_ms=round(self.gc.longest_s * 1000, 1),
            tracked_objects=len(gc.get_objects()),
        )

    def _write_recording(self) -> None:
        """The recording of what the monitor read, beside the journal (``replay`` reads it)."""
        path = recording_path(self.journal, self.recorder.notes.get("drill"))
        if path is None or self.recorder.policy is None:
            return  # no journal file, or no baseline: nothing was judged
        written = self.recorder.write(path, self.journal)
        self.journal.event("recording", "written", path=str(path), **written)

    @contextlib.contextmanager
    def probes(self, interval_s: float = 1.0) -> Iterator[dict[str, ProbeLoop]]:
        """The integrity and security probes (``faults.probes.probe_loops``, as ``watch``
        makes them), feeding the monitor's findings; by name. Leaving the block raises
        ``ProbeError`` when a probe raised while it ran."""
        loops = probe_loops(
            self.stack.target,
            self.stack.base_url,
            integrity=self.source.integrity,
            security=self.source.security,
            ledger=self.ledger,
            dsn=self.stack.postgres_dsn(),
            secrets=self.stack.workspace.secrets.all(),
            interval_s=interval_s,
            journal=self.journal,
        )
        with contextlib.ExitStack() as stack:
            for loop in loops:
                stack.enter_context(loop)
            self._probe_loops = loops
            stack.callback(setattr, self, "_probe_loops", [])
            yield {loop.name: loop for loop in loops}

    def mark(self, label: str, **data: Any) -> float:
        """A timestamped marker for the timeline and the journal; returns its wall time."""
        ev = self.journal.event("marker", label, **data)
        self.timeline.mark(ev.wall, label)
        return ev.wall

    # ---- drill steps ---------------------------------------------------------------------
    def capture_baseline(self, timeout_s: float = 120.0) -> Baseline:
        """Wait until the baseline windows hold enough traffic, then capture the baseline."""
        longest = self.policy.longest_baseline_window_s()
        started = time.time()
        wait_until(
            lambda: (
                time.time() - started >= longest
                and self.store.window(None, time.time() - longest, time.time()).count > 0
            ),
            timeout_s=timeout_s,
            what=f"{longest:.0f} s of baseline traffic",
            interval_s=0.5,
        )
        self.baseline_at = time.time()
        self.baseline = self.recorder.capture_baseline(self.policy, self.source, self.baseline_at)
        if self.access_log is not None:  # read now: a deployment may recreate nginx
            self.access_baseline = self.access_log.read(
                self.baseline_at - longest, self.baseline_at
            )
        self.journal.event(
            "baseline",
            "captured",
            values={f"{v.baseline_id}@{v.scope}": v.value for v in self.baseline.values()},
            problems=list(self.baseline.problems()),
        )
        self.mark("baseline captured")
        return self.baseline

    def baseline_window(self, baseline_id: str = "p95_pre_hybrid") -> tuple[float, float]:
        """The (time-scaled) window a baseline value was read over: it ends at ``baseline_at``."""
        if self.baseline is None:
            raise RuntimeError("no baseline captured yet")
        span = self.policy.baseline_window_s(baseline_id)
        return self.baseline_at - span, self.baseline_at

    def start_monitor(self) -> Monitor:
        """Start judging the stack as it is now: windows start here (see ``LiveSource``)."""
        if self.baseline is None:
            raise RuntimeError("capture the baseline before starting the monitor")
        if self.monitor is None:
            at = self.mark("monitor started")
            self.source.not_before = at
            self.monitor = Monitor(
                self.policy,
                self.baseline,
                self.source,
                self.journal,
                tick_s=self.tick_s,
                deployed_at=at,
            )
            self.monitor.recorder = self.recorder
            self.recorder.monitor_started(self.policy, at)
            self.monitor.start()
            self._stack.callback(self.monitor.stop)
        return self.monitor

    def backup(self) -> BackupSet:
        """The plan's Configuration Backup Procedure; later deployments are then guarded."""
        self.backups = take_backups(self.stack)
        self.mark("backups taken")
        return self.backups

    def deploy(self, release: str, *, wait: bool = True) -> str:
        """Deploy ``release`` for real (guarded by the backups once taken), enable WebSocket
        traffic, then start the monitor."""
        self.mark(f"deploy {release}")
        with contextlib.ExitStack() as paused:
            for loop in self._probe_loops:
                paused.enter_context(loop.paused())
            if self.backups is not None:
                commit = guarded_deploy(self.stack, release, wait=wait)
            else:
                commit = deploy_release(self.stack, release, wait=wait)
        assert self.load is not None
        self.load.enable(Category.WEBSOCKET)
        self.mark(f"{release} deployed", commit=commit)
        self.start_monitor()
        return commit

    def instrument_cpu_s(self) -> dict[str, float]:
        """CPU seconds the monitor's ticks and each signal collector's threads have used (the
        instrument's own overhead, measured with ``time.thread_time``)."""
        cpu = {
            name: c.cpu_seconds()
            for name, c in (
                ("docker_events", self.events),
                ("docker_stats", self.stats),
                ("redis_info", self.redis),
                ("tickets", self.tickets),
                ("app_metrics", self.app_metrics),
            )
            if c is not None
        }
        cpu["monitor"] = self.monitor.cpu_s if self.monitor is not None else 0.0
        return cpu

    def timeline_series(self, step_s: int = 1) -> Timeline:
        """Error rate and P95 per second, memory ratio per app container, plus the markers."""
        rng = self.store.time_range()
        if rng is not None:
            start, end = rng[0], rng[1] + 1
            from rollback_drill.monitor import ERROR_OUTCOMES

            rows = self.store.series(None, start, end, step_s)
            self.timeline.series["error_rate"] = [
                (w.start, w.share(*ERROR_OUTCOMES)) for w in rows if w.count
            ]
            self.timeline.series["p95_s"] = [
                (w.start, w.p95_s) for w in rows if w.p95_s is not None
            ]
        clock = self.source.clock
        for ts in self.stats.series.select("memory_ratio"):
            name = ts.labels.get("container", "?").removeprefix(self.stack.project + "-")
            self.timeline.series[f"memory:{name}"] = [(clock.to_wall(t), v) for t, v in ts]
        return self.timeline
