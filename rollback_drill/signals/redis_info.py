"""Redis ``INFO`` sampled into series.

Series (no labels): ``keyspace_hits``, ``keyspace_misses``, ``rejected_connections``
(counters, reset when Redis restarts or on ``CONFIG RESETSTAT``), ``connected_clients``
(gauge, clients) and ``used_memory`` (gauge, bytes); ``up`` (1 = INFO answered, 0 = not) and
``scrape_failures`` (one sample of 1.0 per failed INFO; the message goes to ``errors``).

Why an INFO failed, for the black-box Redis connection-failure reading
(:mod:`rollback_drill.signals.connection_failures`): ``unreachable`` (one sample per INFO: 1.0
when Redis did not answer at all -- connection refused, reset or timed out -- else 0.0) and
``own_rejections`` (1.0 per INFO that Redis refused at ``maxclients``: this collector's own
reconnection, which Redis counts in ``rejected_connections`` like the app's).

:meth:`RedisInfoCollector.hit_rate` is the cache hit rate over a window from the counters'
increases: hits / (hits + misses), ``None`` when there was no lookup at all.

Only loopback is reached (``host`` must be 127.0.0.0/8, ::1 or localhost): the suite talks to
the port the stack publishes on 127.0.0.1. Each INFO has a short socket timeout and no retry,
so a Redis that is down costs one fast failed sample per tick.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from rollback_drill.errors import TargetError
from rollback_drill.signals._net import is_loopback_host
from rollback_drill.signals.base import Collector
from rollback_drill.signals.series import Clock

__all__ = ["INFO_FIELDS", "RedisInfoCollector"]

INFO_FIELDS = (
    "keyspace_hits",
    "keyspace_misses",
    "connected_clients",
    "rejected_connections",
    "used_memory",
)


def is_rejection(exc: BaseException) -> bool:
    """Redis answered a new connection with ``max number of clients reached``."""
    return "max number of clients" in str(exc)


def is_no_answer(exc: BaseException) -> bool:
    """Redis did not answer at all: refused, reset or timed-out connection (not an error
    reply such as ``-LOADING``, a failed ``AUTH`` or ``max number of clients``)."""
    if isinstance(exc, redis.BusyLoadingError | redis.AuthenticationError) or is_rejection(exc):
        return False
    return isinstance(exc, redis.ConnectionError | redis.TimeoutError | OSError)


class RedisInfoCollector(Collector):
    """INFO of the Redis at ``host:port`` every ``interval`` s (``timeout`` s per call)."""

    kind = "redis-info"

    def __init__(
        self,
        port: int,
        *,
        host: str = "127.0.0.1",
        password: str | None = None,
        username: str | None = None,
        interval: float = 1.0,
        timeout: float = 1.0,
        clock: Clock | None = None,
        retention: float | None = None,
    ) -> None:
        super().__init__(clock=clock, retention=retention)
        if not is_loopback_host(host):
            raise TargetError(f"redis host {host!r} refused: only loopback addresses are reached")
        self.address = f"{host}:{port}"
        self.interval = interval
        self._redis = redis.Redis(
            host=host,
            port=port,
            username=username,
            password=password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )

    def _start(self) -> None:
        self.spawn("info", lambda: self.every(self.interval, self.sample, "info"))

    def _close(self) -> None:
        self._redis.close()

    def sample(self) -> bool:
        """One INFO into the series; False (and an ``errors`` sample) on failure."""
        t = self.clock.now()
        try:
            info: dict[str, Any] = self._redis.info()
        except Exception as exc:
            self.series.append("up", t, 0.0)
            self.series.append("scrape_failures", t, 1.0)
            rejected = is_rejection(exc)
            if rejected:
                self.series.append("own_rejections", t, 1.0)
            self.series.append("unreachable", t, 1.0 if is_no_answer(exc) else 0.0)
            self.record_error(f"INFO {self.address}", exc)
            return False
        for field in INFO_FIELDS:
            if field in info:
                self.series.append(field, t, float(info[field]))
        self.series.append("up", t, 1.0)
        self.series.append("unreachable", t, 0.0)
        return True

    def hit_rate(self, start: float | None = None, end: float | None = None) -> float | None:
        """hits / (hits + misses) over the window; ``None`` without samples or lookups."""
        hits = self.series.increase("keyspace_hits", start, end)
        misses = self.series.increase("keyspace_misses", start, end)
        if hits is None or misses is None or hits + misses == 0:
            return None
        return hits / (hits + misses)
