"""The plan's two connection-failure triggers read black-box, for an app that does not say why
its requests fail (a target whose traffic profile names no ``headers.failure_cause``).

An app that names the cause of each failed answer is read from that header (the load counts
``db-connection`` / ``redis-connection`` answers): that is preferred wherever a target has
one. Without it, the readings below use what PostgreSQL, Redis and the load see themselves.
Both are computed over the rule's window, like the header's.

**"Database connection failures affecting > 50 % of requests"** -- the share

    min(F, P) / N

- ``N``: the load's requests in the window (its record store; a request unanswered past its
  deadline counts as a timeout, ``records.Outstanding``) -- the reading's samples;
- ``F``: those that failed (5xx, refused or reset connection, timeout);
- ``P``: the connections PostgreSQL refused or ended in the window, by its own log
  (:mod:`rollback_drill.signals.postgres_log`: ``too many clients``, ``not currently
  accepting connections``, ``shutting down``, ``terminating connection due to administrator
  command`` ...), whoever the client.

Why the minimum: a request a DB connection failure affects fails (the load sees it), and it
cost at least one connection PostgreSQL refused or ended (an app reconnects when its
connection is gone). So it is 0 whenever PostgreSQL refused nothing -- a paused WSGI, nginx
down, a slow or broken release, however many requests fail -- and whenever no request failed,
however many connections PostgreSQL refused (an app that degrades gracefully, an operator's
``psql`` turned away). What it cannot tell apart: a request that failed for another reason in
a window in which PostgreSQL refused as many connections (coincident faults count as DB
failures, up to ``P``); retries of one request from several requests (the count is capped by
``F``). What it cannot see: a PostgreSQL that is down or unreachable (nothing writes a line:
the error-rate and unavailability triggers see that), a PostgreSQL that does not log to its
container's output, a request a DB failure slowed without failing it.

**"Redis connection failures > 10 per minute"** -- the count

    R + U

- ``R``: the increase of Redis INFO ``rejected_connections`` (connections Redis refused at
  ``maxclients``, counted by Redis whoever the client) minus the INFO sampler's own
  reconnections Redis refused (``own_rejections``);
- ``U``: the load's failed requests that completed while Redis answered nothing on its port
  -- from the first to the last sample of a run of at least :data:`NO_ANSWER_RUN`
  consecutive INFO samples in the window that got no answer (connection refused, reset or
  timed out; a single lost sample, a hiccup of a busy host, makes no run). While Redis cannot
  be reached at all, each failing request is counted as one failed Redis connection.

The reading's samples are the INFO samples in the window. What it cannot tell apart: a
request that failed for another reason while Redis was unreachable (counted). What it cannot
see: packets lost only on the app's side of the path to Redis (the sampler reaches Redis
through its published port: a fault in Redis's own network namespace, or Redis down, is
seen; a rule in the app's namespace is not), and connection failures that failed no request
(an app falling back to its database when its cache is gone).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rollback_drill.records import Outcome, WindowStats
from rollback_drill.signals.series import Sample, SeriesSet

__all__ = [
    "FAILED",
    "NO_ANSWER_RUN",
    "db_failure_share",
    "no_answer_spans",
    "redis_failures",
]

FAILED = (Outcome.SERVER_ERROR, Outcome.CONNECT_ERROR, Outcome.TIMEOUT)
NO_ANSWER_RUN = 3  # consecutive unanswered INFOs: 2 s without an answer at the 1-s interval


def db_failure_share(stats: WindowStats, refused: int) -> tuple[float, int] | None:
    """``(min(F, P) / N, N)`` of the module docstring; None without requests."""
    if not stats.count:
        return None
    failed = sum(stats.outcomes.get(o, 0) for o in FAILED)
    return min(failed, refused) / stats.count, stats.count


def no_answer_spans(
    samples: Sequence[Sample[float]], run: int = NO_ANSWER_RUN
) -> list[tuple[float, float]]:
    """``(first, last)`` times of each run of at least ``run`` consecutive unanswered samples
    (value 1.0) of the ``unreachable`` series, in time order."""
    spans: list[tuple[float, float]] = []
    first: float | None = None
    last = 0.0
    length = 0
    for t, value in [*samples, Sample(float("inf"), 0.0)]:
        if value >= 1.0:
            if first is None:
                first = t
            last, length = t, length + 1
            continue
        if first is not None and length >= run:
            spans.append((first, last))
        first, length = None, 0
    return spans


def redis_failures(
    series: SeriesSet,
    start: float,
    end: float,
    failed_between: Callable[[float, float], int],
) -> tuple[float, int] | None:
    """``(R + U, INFO samples)`` over ``(start, end]`` (monotonic) of the module docstring;
    None without an INFO sample in the window. ``failed_between(a, b)``: the load's failed
    requests between two monotonic times."""
    sampled = [s for ts in series.select("unreachable") for s in ts.window(start, end)]
    if not sampled:
        return None
    rejected = series.increase("rejected_connections", start, end) or 0.0
    own = series.count("own_rejections", start, end)
    total = max(0.0, rejected - own)
    for a, b in no_answer_spans(sorted(sampled)):
        total += failed_between(a, b)
    return total, len(sampled)
