"""The app-metrics collector against a tiny local HTTP server serving Prometheus text."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from rollback_drill.errors import TargetError
from rollback_drill.signals.app_metrics import (
    AppMetricsCollector,
    check_loopback_url,
    parse_metrics,
)
from rollback_drill.wait import wait_for

EXPOSITION = """\
# HELP app_requests_total Requests by status and server.
# TYPE app_requests_total counter
app_requests_total{{status="200",served_by="wsgi"}} {ok}
app_requests_total{{status="500",served_by="asgi"}} {err}
app_requests_created{{status="200",served_by="wsgi"}} 1.7e+09
# TYPE app_db_errors_total counter
app_db_errors_total 0.0
# TYPE app_redis_errors_total counter
app_redis_errors_total {redis}
# TYPE app_auth_failures_total counter
app_auth_failures_total 2.0
# TYPE app_cache_hits_total counter
app_cache_hits_total 90.0
# TYPE app_cache_misses_total counter
app_cache_misses_total 10.0
"""


class FakeApp:
    """Serves ``/metrics`` from ``self.values``; ``status`` other than 200 makes it fail."""

    def __init__(self) -> None:
        self.values = {"ok": 10.0, "err": 1.0, "redis": 0.0}
        self.status = 200
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = EXPOSITION.format(**app.values).encode()
                self.send_response(app.status if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/metrics"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def fake_app() -> Iterator[FakeApp]:
    app = FakeApp()
    app.thread.start()
    try:
        yield app
    finally:
        app.close()


def test_the_app_exposition_is_parsed_by_prometheus_client() -> None:
    samples = parse_metrics(EXPOSITION.format(ok=10, err=1, redis=3))
    assert ("app_requests_total", {"status": "500", "served_by": "asgi"}, 1.0) in samples
    assert len(samples) == 7
    assert not any(s.name.endswith("_created") for s in samples)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/metrics",
        "http://127.3.4.5/metrics",
        "http://localhost:1/metrics",
        "http://[::1]:8000/metrics",
    ],
)
def test_loopback_targets_are_accepted(url: str) -> None:
    assert check_loopback_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.5:8000/metrics",
        "http://192.168.1.1/metrics",
        "http://example.com/metrics",
        "http://127.0.0.1.nip.io/metrics",
        "ftp://127.0.0.1/metrics",
    ],
)
def test_other_hosts_are_refused(url: str) -> None:
    with pytest.raises(TargetError, match="refused"):
        AppMetricsCollector([url])


def test_counters_become_series_with_a_target_label(fake_app: FakeApp) -> None:
    with AppMetricsCollector([fake_app.url], interval=0.05) as metrics:
        up = wait_for(
            lambda: metrics.series.select("up"),
            bool,
            timeout_s=10,
            what="a first scrape",
            interval_s=0.02,
        )
        t0 = metrics.clock.now()
        fake_app.values.update(ok=30.0, err=6.0, redis=12.0)
        wait_for(
            lambda: metrics.series.select("app_requests_total", status="500")[0].latest,
            lambda s: s is not None and s.value == 6.0,
            timeout_s=10,
            what="the new counter values",
            interval_s=0.02,
        )
        t1 = metrics.clock.now()
        assert metrics.series.increase("app_requests_total", t0, t1) == 25
        assert metrics.series.increase("app_requests_total", t0, t1, status="500") == 5
        assert metrics.series.increase("app_redis_errors_total", t0, t1) == 12
        key = f'app_requests_total{{served_by="asgi",status="500",target="{fake_app.url}"}}'
        assert key in metrics.series
        assert "app_requests_created" not in " ".join(metrics.series.keys())
        assert up[0].labels == {"target": fake_app.url}
        assert metrics.errors.values() == []


def test_restarted_app_counter_reset_is_handled(fake_app: FakeApp) -> None:
    with AppMetricsCollector([fake_app.url], interval=0.05) as metrics:

        def errs() -> float | None:
            found = metrics.series.select("app_requests_total", status="500")
            latest = found[0].latest if found else None
            return None if latest is None else latest.value

        wait_for(errs, lambda v: v == 1.0, timeout_s=10, what="the first value", interval_s=0.02)
        t0 = metrics.clock.now()
        fake_app.values.update(err=9.0)
        wait_for(errs, lambda v: v == 9.0, timeout_s=10, what="9 errors", interval_s=0.02)
        fake_app.values.update(err=2.0)  # the app restarted: 2 errors since
        wait_for(errs, lambda v: v == 2.0, timeout_s=10, what="the reset counter", interval_s=0.02)
        t1 = metrics.clock.now()
        assert metrics.series.increase("app_requests_total", t0, t1, status="500") == 8 + 2


def test_scrape_failures_are_recorded_not_raised(fake_app: FakeApp) -> None:
    with AppMetricsCollector(
        [fake_app.url, "http://127.0.0.1:9/metrics"], interval=0.05, timeout=1
    ) as metrics:
        fake_app.status = 503
        wait_for(
            lambda: metrics.series.count("scrape_failures", None, None, target=fake_app.url),
            lambda n: n >= 2,
            timeout_s=10,
            what="failed scrapes of the 503 target",
            interval_s=0.02,
        )
        wait_for(
            lambda: metrics.series.count(
                "scrape_failures", None, None, target="http://127.0.0.1:9/metrics"
            ),
            lambda n: n >= 2,
            timeout_s=10,
            what="failed scrapes of the closed port",
            interval_s=0.02,
        )
        latest_up = metrics.series.get("up", target=fake_app.url).latest
        assert latest_up is not None
        assert latest_up.value == 0.0
        messages = metrics.errors.values()
        assert any("503" in m for m in messages)
        assert any("ConnectError" in m for m in messages)
    assert not metrics.running
