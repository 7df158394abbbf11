"""What the monitor measures: the closed set of metric names, their units, and scopes.

The policy may only name metrics listed in ``CATALOGUE``, and a ``ReadingSource`` answers
for exactly these names (``Metric`` is a ``StrEnum``: ``Metric.ERROR_RATE == "error_rate"``).
A reading is always taken *over a window* ending at ``now``; each entry's ``meaning`` says
what the value over that window is. Ratios are fractions in [0, 1] (10 % is ``0.10``).

A ``Scope`` is where a metric is read: the whole stack, one endpoint category, or one
Compose service. The policy may list several categories or services; the evaluator expands
them into one concrete ``Scope`` each, so a source only ever sees the three concrete kinds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "CATALOGUE",
    "EndpointCategory",
    "Metric",
    "MetricInfo",
    "Scope",
    "ScopeKind",
    "Unit",
    "Worse",
    "format_value",
]


class Unit(StrEnum):
    RATIO = "ratio"  # fraction in [0, 1], shown as a percentage
    SECONDS = "seconds"
    COUNT = "count"  # events counted in the window


class Worse(StrEnum):
    """Which way a metric moves when things get worse."""

    HIGHER = "higher"
    LOWER = "lower"


class ScopeKind(StrEnum):
    GLOBAL = "global"
    CATEGORY = "category"
    CATEGORIES = "categories"  # policy only: expanded into one CATEGORY scope each
    SERVICE = "service"
    SERVICES = "services"  # policy only: expanded into one SERVICE scope each


CONCRETE_KINDS = frozenset({ScopeKind.GLOBAL, ScopeKind.CATEGORY, ScopeKind.SERVICE})


class EndpointCategory(StrEnum):
    """The plan's endpoint categories (the load generator's traffic classes)."""

    CRUD = "crud"
    AUTH = "auth"
    ADMIN = "admin"
    STREAMING = "streaming"
    WEBSOCKET = "websocket"


class Metric(StrEnum):
    ERROR_RATE = "error_rate"
    DB_CONNECTION_FAILURE_RATE = "db_connection_failure_rate"
    INTEGRITY_VIOLATIONS = "integrity_violations"
    SECURITY_FINDINGS = "security_findings"
    P95_LATENCY = "p95_latency"
    CONTAINER_RESTARTS = "container_restarts"
    MEMORY_USAGE_RATIO = "memory_usage_ratio"
    AUTH_FAILURE_RATE = "auth_failure_rate"
    REDIS_CONNECTION_FAILURES = "redis_connection_failures"
    WEBSOCKET_DISCONNECT_RATE = "websocket_disconnect_rate"
    CACHE_HIT_RATE = "cache_hit_rate"
    SUPPORT_TICKETS = "support_tickets"


@dataclass(frozen=True)
class MetricInfo:
    unit: Unit
    worse: Worse
    scopes: frozenset[ScopeKind]  # concrete kinds this metric is read at
    meaning: str  # value over the window; ``samples`` is what backs it


_CAT = frozenset({ScopeKind.CATEGORY})
_GLOBAL = frozenset({ScopeKind.GLOBAL})
_CAT_OR_GLOBAL = frozenset({ScopeKind.CATEGORY, ScopeKind.GLOBAL})
_SERVICE = frozenset({ScopeKind.SERVICE})

CATALOGUE: Mapping[Metric, MetricInfo] = {
    Metric.ERROR_RATE: MetricInfo(
        Unit.RATIO,
        Worse.HIGHER,
        _CAT_OR_GLOBAL,
        "failed requests / requests: HTTP 5xx, connection error, timeout, failed WebSocket "
        "handshake (4xx are not errors); samples = requests",
    ),
    Metric.DB_CONNECTION_FAILURE_RATE: MetricInfo(
        Unit.RATIO,
        Worse.HIGHER,
        _CAT_OR_GLOBAL,
        "requests failed by a lost DB connection (5xx with X-Failure-Cause: db-connection) "
        "/ requests; samples = requests",
    ),
    Metric.INTEGRITY_VIOLATIONS: MetricInfo(
        Unit.COUNT,
        Worse.HIGHER,
        _GLOBAL,
        "acknowledged writes missing from the DB or whose checksum disagrees with the write "
        "ledger, found by integrity checks; samples = integrity checks run",
    ),
    Metric.SECURITY_FINDINGS: MetricInfo(
        Unit.COUNT,
        Worse.HIGHER,
        _GLOBAL,
        "findings of the security probe (data or admin reachable without the right "
        "session, secrets exposed); samples = probe runs",
    ),
    Metric.P95_LATENCY: MetricInfo(
        Unit.SECONDS,
        Worse.HIGHER,
        _CAT,
        "95th percentile latency measured from each request's scheduled start; "
        "samples = completed requests",
    ),
    Metric.CONTAINER_RESTARTS: MetricInfo(
        Unit.COUNT,
        Worse.HIGHER,
        _SERVICE,
        "restarts of the service's containers (Docker events); samples = collector polls "
        "(at least 1 while the collector runs)",
    ),
    Metric.MEMORY_USAGE_RATIO: MetricInfo(
        Unit.RATIO,
        Worse.HIGHER,
        _SERVICE,
        "highest container memory usage / container memory limit among the service's "
        "containers (Docker stats, mean over the window); samples = stats samples; "
        "no limit set -> value None",
    ),
    Metric.AUTH_FAILURE_RATE: MetricInfo(
        Unit.RATIO,
        Worse.HIGHER,
        _CAT_OR_GLOBAL,
        "authentications that should succeed but got 401/403 (login with valid credentials, "
        "requests carrying a valid session) / such attempts; samples = attempts",
    ),
    Metric.REDIS_CONNECTION_FAILURES: MetricInfo(
        Unit.COUNT,
        Worse.HIGHER,
        _GLOBAL,
        "Redis connection errors (app_redis_errors_total increase, plus 5xx with "
        "X-Failure-Cause: redis-connection); samples = metric scrapes",
    ),
    Metric.WEBSOCKET_DISCONNECT_RATE: MetricInfo(
        Unit.RATIO,
        Worse.HIGHER,
        _CAT_OR_GLOBAL,
        "WebSocket sessions closed abnormally (by the server or the network before the "
        "client finished) / sessions active in the window; samples = sessions",
    ),
    Metric.CACHE_HIT_RATE: MetricInfo(
        Unit.RATIO,
        Worse.LOWER,
        _GLOBAL,
        "cache hits / (hits + misses), from app_cache_hits_total and app_cache_misses_total "
        "increases; samples = cache lookups",
    ),
    Metric.SUPPORT_TICKETS: MetricInfo(
        Unit.COUNT,
        Worse.HIGHER,
        _GLOBAL,
        "user complaints (support tickets) opened; samples = polls of the ticket source",
    ),
}


@dataclass(frozen=True, order=True)
class Scope:
    """Where one reading is taken: ``global``, ``category:<name>`` or ``service:<name>``."""

    kind: ScopeKind
    name: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in CONCRETE_KINDS:
            raise ValueError(f"a concrete scope is global, category or service, not {self.kind}")
        if (self.kind is ScopeKind.GLOBAL) != (self.name is None):
            raise ValueError(f"scope {self.kind}: name {self.name!r} does not fit this kind")

    @classmethod
    def everywhere(cls) -> Scope:
        return cls(ScopeKind.GLOBAL)

    @classmethod
    def category(cls, name: str) -> Scope:
        return cls(ScopeKind.CATEGORY, EndpointCategory(name).value)

    @classmethod
    def service(cls, name: str) -> Scope:
        return cls(ScopeKind.SERVICE, name)

    def __str__(self) -> str:
        return str(self.kind) if self.name is None else f"{self.kind}:{self.name}"


def format_value(metric: Metric, value: float | None) -> str:
    """A reading for humans: ratios as %, latencies in ms, counts as integers."""
    if value is None or math.isnan(value):
        return "no data"
    unit = CATALOGUE[metric].unit
    if unit is Unit.RATIO:
        return f"{value * 100:.4g} %"
    if unit is Unit.SECONDS:
        return f"{value * 1000:.4g} ms"
    return f"{value:g}"
