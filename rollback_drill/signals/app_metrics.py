"""The app's Prometheus ``/metrics``, scraped into series.

Targets are ``http://127.0.0.1:<port>/metrics`` URLs (each app container's port published on
loopback); any other host is refused with :class:`~rollback_drill.errors.TargetError`, because
the suite sends traffic to loopback only. Each target is scraped by its own thread every
``interval`` seconds, so a hung target does not delay the others.

Series: every sample of the exposition under its sample name (``app_requests_total``,
``app_db_errors_total``, ``app_redis_errors_total``, ``app_auth_failures_total``,
``app_cache_hits_total``, ``app_cache_misses_total``; docs/app-api.md), with its labels plus
``target`` = the URL; ``*_created`` samples are skipped. Counters are read with
``series.increase(name, t0, t1, **labels)``, which sums over targets and label sets and
handles resets (an app container that restarts starts its counters at zero again).
Per target, Prometheus-style: ``up`` (1 = scrape parsed, 0 = failed), ``scrape_duration_seconds``
and ``scrape_failures`` (one sample of 1.0 per failed scrape); the failure's message goes to
``errors``. Scrape failures are data, never exceptions.

Parsing is ``prometheus_client.parser``'s (a dependency).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import httpx
from prometheus_client.parser import text_string_to_metric_families

from rollback_drill.errors import TargetError
from rollback_drill.signals._net import is_loopback_host
from rollback_drill.signals.base import Collector
from rollback_drill.signals.series import Clock

__all__ = [
    "AppMetricsCollector",
    "ParsedSample",
    "check_loopback_url",
    "parse_metrics",
]


class ParsedSample(NamedTuple):
    name: str
    labels: dict[str, str]
    value: float


def parse_metrics(text: str) -> list[ParsedSample]:
    """Samples of an exposition (``prometheus_client``'s parser); ``*_created`` samples dropped."""
    return [
        ParsedSample(s.name, dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.name.endswith("_created")
    ]


def check_loopback_url(url: str) -> str:
    """The URL itself if it is http(s) on a loopback host; else ``TargetError``."""
    try:
        parsed = httpx.URL(url)
    except Exception as exc:
        raise TargetError(f"metrics target {url!r} is not a URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not is_loopback_host(parsed.host):
        raise TargetError(
            f"metrics target {url!r} refused: only http(s) on 127.0.0.0/8, ::1 or localhost"
        )
    return url


class AppMetricsCollector(Collector):
    """Scrape each of ``targets`` (loopback URLs) every ``interval`` s, ``timeout`` s each.

    ``transport``: an ``httpx.BaseTransport`` to use instead of the network (tests).
    """

    kind = "app-metrics"

    def __init__(
        self,
        targets: Sequence[str],
        *,
        interval: float = 1.0,
        timeout: float = 2.0,
        clock: Clock | None = None,
        retention: float | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(clock=clock, retention=retention)
        if isinstance(targets, str):
            raise TypeError("targets is a list of URLs, not one string")
        self.targets = [check_loopback_url(u) for u in targets]
        self.interval = interval
        self._http = httpx.Client(timeout=timeout, transport=transport, trust_env=False)

    def _start(self) -> None:
        for url in self.targets:
            self.spawn(f"scrape:{url}", self._loop_for(url))

    def _loop_for(self, url: str) -> Callable[[], None]:
        return lambda: self.every(self.interval, lambda: self.scrape(url), f"scrape {url}")

    def _close(self) -> None:
        self._http.close()

    def scrape(self, url: str) -> bool:
        """One scrape of ``url`` into the series; False (and an ``errors`` sample) on failure."""
        began = time.perf_counter()
        t = self.clock.now()
        try:
            response = self._http.get(url)
            response.raise_for_status()
            samples = parse_metrics(response.text)
        except Exception as exc:
            self.series.append("up", t, 0.0, target=url)
            self.series.append("scrape_failures", t, 1.0, target=url)
            self.record_error(f"scrape {url}", exc)
            return False
        for s in samples:
            self.series.append(s.name, t, s.value, **{**s.labels, "target": url})
        self.series.append("up", t, 1.0, target=url)
        self.series.append("scrape_duration_seconds", t, time.perf_counter() - began, target=url)
        return True
