"""Open-model, fixed-rate load generator (asyncio) -- no coordinated omission.

Request ``i`` is *scheduled* at ``t0 + i / rate`` whatever the target does, and its latency is
measured from that scheduled time to the end of the request (the SSE ``event: end``, the
WebSocket close). Concurrency is bounded by a pool of ``max_concurrency`` workers: when all
are busy, due requests wait, their queueing counts in their latency (``started - scheduled``
is kept on every record), and the schedule does not slip -- a stalled target does not lower
the number of scheduled requests. The category of each request comes from the
:class:`~rollback_drill.traffic.Mix` at send time, so enabling ``websocket`` after the hybrid
deploy takes effect at once.

Client: HTTP and SSE go through :mod:`rollback_drill.http1`, a small keep-alive HTTP/1.1
client on httptools' C parser; WebSockets through ``websockets``. Chosen by measurement on this
project's 2-core machine (``bench/README.md``): a bare saturated client loop did ~600 requests
per CPU-second with httpx, ~12,500 with aiohttp, ~37,000 (asyncio) / ~90,000 (uvloop) with the
lean protocol client; inside the whole generator aiohttp came out at 0.7-1.0x Locust's
FastHttpUser per core, short of the 1.5x goal, the lean client well above it. The generator
runs on whatever event loop the caller has; uvloop is an optional speed-up.

Deadlines: a request still unanswered ``LoadConfig.deadline_s`` (:data:`DEADLINE_S`, 2 s)
after its scheduled time -- plus, for a stream, the time its events take by design -- has
failed, whether or not the client has given up yet (``timeout_s``, 10 s). The generator keeps
its outstanding requests (in flight, or due and queued for a worker) in an
:class:`~rollback_drill.records.Outstanding` registered with the store, which counts every
overdue one as a provisional ``timeout`` in its windows until the final record replaces it: a
stack that stops answering shows in the monitor's windows from the deadline on, not ten seconds
later. ``deadline_s=None`` switches this off.

Timing: on Linux each slot is awaited on a ``timerfd`` (:mod:`rollback_drill.timer`), not the
event loop's millisecond timers, whose lateness (P95 ~1.5 ms on uvloop at 200 req/s) counted
into every latency measured from the schedule. ``precise_timer`` says which one a run used.

Only loopback targets are accepted (``127.0.0.0/8``, ``::1``, ``localhost``): any other host
raises :class:`~rollback_drill.errors.TargetError` before a socket is opened.

Usage::

    config = LoadConfig("http://127.0.0.1:8080", rate=50, user=Credentials("drill", "pw"),
                        staff=Credentials("admin", "pw"),
                        disabled=frozenset({Category.WEBSOCKET}))
    async with LoadGenerator(config) as gen:    # logs the virtual users in, starts sending
        ...                                     # gen.store.window(...), gen.enable(...)
    # leaving the block stops cleanly: no task left, connections closed

or ``stats = await LoadGenerator(config).run(duration_s=30)``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final
from urllib.parse import urlsplit

from rollback_drill.actions import Actions, ActionSettings
from rollback_drill.errors import TargetError
from rollback_drill.http1 import Http1Pool
from rollback_drill.ledger import Ledger
from rollback_drill.profile import TrafficProfile
from rollback_drill.records import Outstanding, RecordStore, RequestRecord
from rollback_drill.signals._net import is_loopback_host
from rollback_drill.timer import PreciseTimer
from rollback_drill.traffic import Category, Credentials, Mix

__all__ = ["DEADLINE_S", "LoadConfig", "LoadGenerator", "LoadStats", "require_loopback"]

# How long after its scheduled time a request may stay unanswered before it counts as failed
# (``LoadConfig.deadline_s``). Far above a healthy stack's slowest answers -- its P95 is
# ~20 ms, and the worst stall seen on this project's CI VMs (an fdatasync, CHANGELOG) held
# a commit 1 s -- and short of the shortest window that judges a total outage: the policy's
# `service_unavailable` 30 s, 3 s at the quick drills' time scale 10, whose decision must
# come within 5 s of a stack that stops answering (the window, its 1-s buckets, a tick).
DEADLINE_S: Final = 2.0


def require_loopback(base_url: str) -> str:
    """``base_url`` without a trailing slash, or TargetError if it is not a loopback URL."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if parts.scheme != "http":
        raise TargetError(f"load target {base_url!r}: scheme must be http (loopback, no TLS)")
    if not is_loopback_host(host):
        raise TargetError(
            f"load target {base_url!r}: host {host!r} is not loopback "
            "(only 127.0.0.0/8, ::1 or localhost may receive drill traffic)"
        )
    return base_url.rstrip("/")


@dataclass(frozen=True, slots=True)
class LoadConfig:
    """What to send, how fast, to whom. ``rate`` is the total of all enabled categories."""

    base_url: str
    rate: float
    user: Credentials
    profile: TrafficProfile  # the target's: what each category's request is
    staff: Credentials | None = None
    weights: Mapping[Category, int] = field(default_factory=dict)  # empty: the profile's
    disabled: frozenset[Category] = frozenset()
    max_concurrency: int = 64
    virtual_users: int = 4
    timeout_s: float = 10.0
    connect_timeout_s: float = 3.0
    precise_timer: bool = True  # a timerfd where the platform has one (rollback_drill.timer)
    # wake this much before each slot and yield to the loop until it is due: a sleeping
    # process on a 2-vCPU VM wakes 0.15 ms late (P50) to 0.55 ms (P95) even on a timerfd; the
    # price is the CPU of the spin (~19 % of a core at 200 req/s with 1 ms). Off by default:
    # on a drill host that CPU belongs to the stack under test.
    spin_s: float = 0.0
    # a request unanswered this long after its scheduled time (a stream: plus its events'
    # own duration) counts as a timeout at once, not only at ``timeout_s``; None: off
    deadline_s: float | None = DEADLINE_S

    def deadline(self, category: Category) -> float | None:
        """Seconds after its scheduled time by which a request of ``category`` must have ended:
        what the conversation takes by design on an instant stack (a stream: its events'
        intervals; an HTTP request or a WebSocket's echoes: nothing) plus ``deadline_s``."""
        if self.deadline_s is None:
            return None
        streaming = self.profile.categories.streaming
        if category is Category.STREAMING and streaming is not None:
            return streaming.duration_s + self.deadline_s
        return self.deadline_s

    def mix_weights(self) -> dict[Category, int]:
        """The category weights in force: ``weights`` where given, else the profile's."""
        if self.weights:
            return dict(self.weights)
        return {Category(name): w for name, w in self.profile.categories.weights().items()}

    def __post_init__(self) -> None:
        require_loopback(self.base_url)
        if not (0.0 <= self.spin_s <= 0.01):
            raise ValueError(f"spin_s must be within 0..0.01 s, not {self.spin_s!r}")
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError(f"rate must be a positive number of requests/s, got {self.rate!r}")
        if self.max_concurrency < 1 or self.virtual_users < 1:
            raise ValueError("max_concurrency and virtual_users must be >= 1")
        if self.timeout_s <= 0 or self.connect_timeout_s <= 0:
            raise ValueError("timeouts must be > 0")
        if self.deadline_s is not None and not (0 < self.deadline_s < math.inf):
            raise ValueError(f"deadline_s must be > 0 s (or None: off), not {self.deadline_s!r}")
        weights = self.mix_weights()
        for category, weight in weights.items():
            if weight > 0 and getattr(self.profile.categories, category.value) is None:
                raise ValueError(f"the target's traffic profile has no {category.value} category")
        admin_wanted = weights.get(Category.ADMIN, 0) > 0 and Category.ADMIN not in self.disabled
        if self.staff is None and admin_wanted:
            raise ValueError("the admin category needs staff credentials (or weight 0)")


@dataclass(frozen=True, slots=True)
class LoadStats:
    """Counters of one run. ``scheduled`` counts slots whose time has come (or came before
    the stop); ``unsent`` of them never left because the concurrency bound stayed saturated;
    ``skipped`` found every category disabled."""

    scheduled: int
    sent: int
    completed: int
    in_flight: int
    unsent: int
    skipped: int
    abandoned: int
    relogins: int
    max_queued_s: float
    elapsed_s: float

    @property
    def achieved_rate(self) -> float:
        return self.completed / self.elapsed_s if self.elapsed_s > 0 else 0.0


class LoadGenerator:
    """Fixed-rate, open-model traffic; see the module docstring."""

    def __init__(
        self,
        config: LoadConfig,
        *,
        store: RecordStore | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        self.config = config
        self.base_url = require_loopback(config.base_url)
        self.store = store if store is not None else RecordStore()
        self.ledger = ledger if ledger is not None else Ledger()
        self.mix = Mix(config.mix_weights(), disabled=config.disabled)
        self._interval = 1.0 / config.rate
        self._http: Http1Pool | None = None
        self._actions: Actions | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._sleepers: set[asyncio.Future[None]] = set()
        self._timer: PreciseTimer | None = None
        self._t0 = 0.0
        self._t_end = math.inf
        self._wall_offset = 0.0
        self._pending = Outstanding(0.0, self._interval, config.max_concurrency, {}, math.inf)
        self._sent = 0
        self._completed = 0
        self._skipped = 0
        self._abandoned = 0
        self._max_queued = 0.0
        self._stopped_at: float | None = None
        self._started = False

    # -- control -----------------------------------------------------------------------------

    def enable(self, category: Category) -> None:
        if category is Category.ADMIN and self.config.staff is None:
            raise ValueError("the admin category needs staff credentials")
        self.mix.enable(category)

    def disable(self, category: Category) -> None:
        self.mix.disable(category)

    async def start(self, duration_s: float | None = None) -> None:
        """Open the client, log the virtual users in, then start the schedule."""
        if self._started:
            raise RuntimeError("this LoadGenerator was already started")
        self._started = True
        cfg = self.config
        parts = urlsplit(self.base_url)
        self._http = Http1Pool(
            parts.hostname or "127.0.0.1", parts.port or 80, connect_timeout_s=cfg.connect_timeout_s
        )
        try:
            self._actions = Actions(
                self.base_url,
                self._http,
                profile=cfg.profile,
                user=cfg.user,
                staff=cfg.staff,
                ledger=self.ledger,
                virtual_users=cfg.virtual_users,
                settings=ActionSettings(
                    timeout_s=cfg.timeout_s, connect_timeout_s=cfg.connect_timeout_s
                ),
            )
            await self._actions.setup()
        except BaseException:
            await self._http.close()
            raise
        self._timer = PreciseTimer.create() if cfg.precise_timer else None
        self._t0 = time.perf_counter()
        self._wall_offset = time.time() - self._t0
        if duration_s is not None:
            self._t_end = self._t0 + duration_s
        if cfg.deadline_s is not None:
            deadlines: dict[str, float] = {
                c: d for c in Category if (d := cfg.deadline(c)) is not None
            }
            pending = self._pending = Outstanding(
                self._t0 + self._wall_offset,
                self._interval,
                cfg.max_concurrency,
                deadlines,
                cfg.deadline_s,
            )
            pending.end = self._t_end + self._wall_offset
            self.store.track(pending)
        self._workers = [
            asyncio.create_task(self._worker(n), name=f"load-worker-{n}")
            for n in range(cfg.max_concurrency)
        ]

    async def wait(self, timeout_s: float | None = None) -> None:
        """Until every worker is done (a run with a duration), or ``timeout_s`` passed."""
        if self._workers:
            await asyncio.wait(self._workers, timeout=timeout_s)

    async def stop(self, grace_s: float | None = None) -> LoadStats:
        """Stop now: nothing new is sent (due slots not yet sent count as ``unsent``); requests
        in flight may finish (up to ``grace_s``, default the request timeout + 1 s), the rest
        are cancelled; every connection is closed."""
        if self._stopped_at is None:
            self._stopped_at = time.perf_counter()
            self._t_end = min(self._t_end, self._stopped_at)
            self._pending.backlog = False  # never sent now: unsent, not the stack's failures
            self._pending.end = self._t_end + self._wall_offset
        for sleeper in list(self._sleepers):
            if not sleeper.done():
                sleeper.set_result(None)
        grace = self.config.timeout_s + 1.0 if grace_s is None else grace_s
        if self._workers:
            _, pending = await asyncio.wait(self._workers, timeout=grace)
            for task in pending:
                task.cancel()
            self._abandoned += len(pending)
            outcomes = await asyncio.gather(*self._workers, return_exceptions=True)
            errors = [e for e in outcomes if isinstance(e, Exception)]
        else:
            errors = []
        self.store.untrack(self._pending)
        if self._http is not None:
            await self._http.close()
        if self._timer is not None:
            self._timer.close()
        self.store.flush()
        if errors:  # a bug, not a target failure: never hide it
            raise errors[0]
        return self.stats

    async def run(self, duration_s: float) -> LoadStats:
        """Start, send for ``duration_s``, drain, stop."""
        await self.start(duration_s)
        try:
            await self.wait(duration_s + self.config.timeout_s + 1.0)
        finally:
            stats = await self.stop()
        return stats

    async def __aenter__(self) -> LoadGenerator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- state -------------------------------------------------------------------------------

    @property
    def stats(self) -> LoadStats:
        now = time.perf_counter()
        horizon = min(now, self._t_end)
        scheduled = 0
        if self._workers and horizon > self._t0:
            scheduled = math.ceil((horizon - self._t0) / self._interval)
        in_flight = self._sent - self._completed
        relogins = self._actions.relogins if self._actions is not None else 0
        elapsed = (self._stopped_at or now) - self._t0 if self._workers else 0.0
        unsent = max(0, scheduled - self._sent - self._skipped)
        return LoadStats(
            scheduled=scheduled,
            sent=self._sent,
            completed=self._completed,
            in_flight=in_flight,
            unsent=unsent,
            skipped=self._skipped,
            abandoned=self._abandoned,
            relogins=relogins,
            max_queued_s=self._max_queued,
            elapsed_s=elapsed,
        )

    def to_wall(self, perf_time: float) -> float:
        """Epoch seconds of a ``time.perf_counter()`` reading of this run."""
        return perf_time + self._wall_offset

    # -- the schedule ------------------------------------------------------------------------

    @property
    def precise_timer(self) -> bool:
        """Whether slots are timed by a timerfd (sub-millisecond) rather than the loop's
        millisecond timers (see :mod:`rollback_drill.timer`)."""
        return self._timer is not None

    async def _sleep_until(self, due: float) -> None:
        """Sleep until ``due`` (perf_counter); woken early only by ``stop``. Re-sleeps after an
        early timer (uvloop rounds timers to whole milliseconds)."""
        loop = asyncio.get_running_loop()
        timer = self._timer
        spin = self.config.spin_s
        wake = due - spin
        while self._stopped_at is None and (delay := wake - time.perf_counter()) > 0:
            if timer is not None:
                waiter = timer.wake_at(wake)
                handle = None
            else:
                waiter = loop.create_future()
                handle = loop.call_later(delay, _wake, waiter)
            self._sleepers.add(waiter)
            try:
                await waiter
            finally:
                if handle is not None:
                    handle.cancel()
                self._sleepers.discard(waiter)
        if spin:  # yield-spin the last stretch: other callbacks still run meanwhile
            perf = time.perf_counter
            while self._stopped_at is None and perf() < due:
                await asyncio.sleep(0)

    async def _worker(self, n: int) -> None:
        actions = self._actions
        assert actions is not None
        store = self.store
        perf = time.perf_counter
        pending = self._pending  # the store reads it: see Outstanding for the write order
        sending = pending.sending
        while True:
            slot = pending.claimed
            due = self._t0 + slot * self._interval
            if due >= self._t_end:
                return
            pending.claimed = slot + 1
            await self._sleep_until(due)
            if self._stopped_at is not None:  # stop() sends nothing new, not even the backlog
                return
            category = self.mix.next()
            if category is None:
                self._skipped += 1
                continue
            sending[n] = (slot, category)
            started = perf()
            queued = started - due
            if queued > self._max_queued:
                self._max_queued = queued
            self._sent += 1
            result = await actions.run(category)
            ended = perf()
            sending[n] = None  # before the record: a reader may miss it once, never count it twice
            self._completed += 1
            offset = self._wall_offset
            store.append(
                RequestRecord(
                    category,
                    due + offset,
                    started + offset,
                    ended + offset,
                    ended - due,
                    result.outcome,
                    result.status,
                    result.served_by,
                    result.release,
                    result.failure_cause,
                    result.write_id,
                    result.delay_s,
                )
            )


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
