"""The shape every signal collector shares.

A collector owns background threads that sample or listen, and a :class:`SeriesSet` they fill:

    with RedisInfoCollector(port) as redis_info:      # start() ... stop(), even on error
        ...
        redis_info.series.get("keyspace_hits").increase(t0, t1)

- ``start()`` starts the threads (idempotent while running; a stopped collector is not
  restarted: make a new one); ``stop(timeout)`` is idempotent, closes what blocks the threads
  (streams, servers) and joins them with one overall deadline.
- Threads never raise: an exception becomes a sample of ``errors`` (a ``TimeSeries[str]`` of
  one-line messages) and the thread carries on (or ends, for a per-container reader).
- ``cpu_seconds()`` is the CPU time the collector's own threads used (``time.thread_time``
  measured by each thread), so a drill can report the monitor's overhead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self

from rollback_drill.signals.series import DEFAULT_CLOCK, Clock, SeriesSet, TimeSeries

__all__ = ["Collector"]


class Collector:
    """Base class: subclasses implement :meth:`_start` (spawn threads), maybe :meth:`_interrupt`."""

    kind = "collector"

    def __init__(self, *, clock: Clock | None = None, retention: float | None = None) -> None:
        self.clock = clock or DEFAULT_CLOCK
        self.series = SeriesSet(retention=retention)
        self.errors: TimeSeries[str] = TimeSeries("errors", retention=retention)
        self._stop_event = threading.Event()
        self._state_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._cpu: dict[threading.Thread, float] = {}
        self._started = False
        self._stopped = False

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        with self._state_lock:
            if self._stopped:
                raise RuntimeError(f"{self.kind} was stopped; create a new collector")
            if self._started:
                return self
            self._started = True
        self._start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the threads and wait for them (at most ``timeout`` seconds in all)."""
        with self._state_lock:
            if self._stopped:
                return
            self._stopped = True
            self._stop_event.set()
            threads = list(self._threads)  # spawn() starts no thread from now on
        try:
            self._interrupt()
        except Exception as exc:
            self.record_error("stop", exc)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                self.record_error("stop", f"thread {thread.name} still running after {timeout}s")
        try:
            self._close()
        except Exception as exc:
            self.record_error("stop", exc)

    @property
    def running(self) -> bool:
        return self._started and not self._stopped

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- for subclasses --------------------------------------------------------------------

    def _start(self) -> None:
        raise NotImplementedError

    def _interrupt(self) -> None:
        """Unblock threads waiting on I/O (close a stream, shut a server down)."""

    def _close(self) -> None:
        """Release resources once the threads have ended (clients, sockets)."""

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True when the collector is stopping."""
        return self._stop_event.wait(max(0.0, seconds))

    def record_error(self, where: str, error: BaseException | str) -> None:
        if isinstance(error, BaseException):
            lines = str(error).strip().splitlines()
            message = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
        else:
            message = error
        self.errors.append(self.clock.now(), f"{self.kind} {where}: {message}")

    def spawn(self, name: str, target: Callable[[], None]) -> threading.Thread | None:
        """Run ``target`` in a daemon thread whose exceptions become ``errors`` samples.

        Returns the thread, or ``None`` once the collector is stopping (nothing is started).
        """

        def guarded() -> None:
            try:
                target()
            except Exception as exc:
                if not self.stopping:
                    self.record_error(name, exc)
            finally:
                self.account()

        thread = threading.Thread(target=guarded, name=f"{self.kind}:{name}", daemon=True)
        with self._state_lock:
            if self._stopped:
                return None
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
            thread.start()
        return thread

    def every(self, interval: float, tick: Callable[[], object], where: str) -> None:
        """Call ``tick`` at a fixed rate until stopped (missed ticks are skipped, not bunched)."""
        next_at = time.monotonic()
        while not self.stopping:
            try:
                tick()
            except Exception as exc:
                self.record_error(where, exc)
            self.account()
            next_at += interval
            now = time.monotonic()
            if next_at < now:
                next_at = now + interval - ((now - next_at) % interval)
            if self.wait(next_at - now):
                return

    def account(self) -> None:
        """Record the calling thread's CPU time (call it from the collector's own threads)."""
        self._cpu[threading.current_thread()] = time.thread_time()

    def cpu_seconds(self) -> float:
        return sum(self._cpu.values())
