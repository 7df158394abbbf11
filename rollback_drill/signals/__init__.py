"""Signals: live time series the monitor reads, one collector per source.

=======================  =================================================================
``series``               ``TimeSeries`` / ``SeriesSet`` / ``Clock``: the shared time base
``base``                 ``Collector``: start/stop/context manager, ``series``, ``errors``
``docker_events``        container restarts, dies, crashes, OOMs per Compose service
``docker_stats``         memory usage / limit / ratio per container (cgroup files or API)
``app_metrics``          the app's Prometheus ``/metrics`` on loopback
``redis_info``           Redis INFO counters and gauges, cache hit rate
``postgres_log``         connections PostgreSQL refused or ended, from its log via Docker
``connection_failures``  DB / Redis connection-failure readings without the app's help
``tickets``              support tickets from a JSON-lines file and ``POST /tickets``
=======================  =================================================================
"""

from __future__ import annotations

from rollback_drill.signals.app_metrics import AppMetricsCollector
from rollback_drill.signals.base import Collector
from rollback_drill.signals.docker_events import DockerEventsCollector
from rollback_drill.signals.docker_stats import DockerStatsCollector, MemoryReading
from rollback_drill.signals.redis_info import RedisInfoCollector
from rollback_drill.signals.series import DEFAULT_CLOCK, Clock, Sample, SeriesSet, TimeSeries
from rollback_drill.signals.tickets import Ticket, TicketCollector

__all__ = [
    "DEFAULT_CLOCK",
    "AppMetricsCollector",
    "Clock",
    "Collector",
    "DockerEventsCollector",
    "DockerStatsCollector",
    "MemoryReading",
    "RedisInfoCollector",
    "Sample",
    "SeriesSet",
    "Ticket",
    "TicketCollector",
    "TimeSeries",
]
