"""nginx's access log as the drills' independent instrument: the target's log_format turned
into a parser, lines sorted into the profile's categories, P95 and 5xx shares."""

from __future__ import annotations

from paths import REFERENCE_TARGET

from rollback_drill.signals.access_log import (
    AccessLog,
    check_format,
    classifier,
    format_regex,
    parse_lines,
    quantile,
)
from rollback_drill.target import load_target

LINES = [
    '172.18.0.1 [03/Dec/2026:09:30:01 +0000] "GET /api/models/ HTTP/1.1" 200 512 '
    "1796290201.125 0.012 0.011",
    '172.18.0.1 [03/Dec/2026:09:30:01 +0000] "GET /api/sessions/5f3e/ HTTP/1.1" 500 20 '
    "1796290201.250 0.030 0.030",
    '172.18.0.1 [03/Dec/2026:09:30:01 +0000] "POST /api/sessions/5f3e/messages/ HTTP/1.1" 201 '
    "90 1796290201.300 0.020 0.019",
    '172.18.0.1 [03/Dec/2026:09:30:02 +0000] "GET /api/stream/?n=5&interval_ms=50 HTTP/1.1" '
    "200 300 1796290202.000 0.260 0.259",
    '172.18.0.1 [03/Dec/2026:09:30:02 +0000] "POST /api/auth/login/ HTTP/1.1" 200 80 '
    "1796290202.100 0.150 0.150",
    '172.18.0.1 [03/Dec/2026:09:30:02 +0000] "GET /favicon.ico HTTP/1.1" 404 0 '
    "1796290202.200 0.000 -",
    "2026/12/03 09:30:03 [notice] 1#1: signal process started",
]


def test_the_reference_format_parses_and_sorts_into_the_profiles_categories() -> None:
    target = load_target(REFERENCE_TARGET)
    spec = target.signals.access_log
    assert spec is not None and check_format(spec.format) is None
    entries = parse_lines(LINES, format_regex(spec.format), classifier(target.traffic))
    assert [(e.category, e.status) for e in entries] == [
        ("crud", 200),
        ("crud", 500),
        ("crud", 201),
        ("streaming", 200),
        ("auth", 200),
        (None, 404),
    ]
    assert entries[0].time == 1796290201.125 and entries[3].request_time == 0.26
    assert AccessLog.error_share(entries, "crud") == (1 / 3, 3)
    assert AccessLog.p95(entries, "crud") == (0.030, 3)
    assert AccessLog.p95(entries, "websocket") == (None, 0)


def test_a_format_without_timing_cannot_measure_levels() -> None:
    combined = (
        '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
        '"$http_referer" "$http_user_agent"'
    )
    assert check_format(combined) == "the access log format lacks $msec, $request_time"
    assert check_format("$msec $status $request_time $host") == (
        "the access log format lacks one of $request_uri, $uri, $request"
    )


def test_another_teams_format_with_braced_variables_and_uri() -> None:
    fmt = '${msec}|$uri|$status|$request_time|"$http_user_agent"'
    target = load_target(REFERENCE_TARGET)
    line = '1796290201.5|/admin/|302|0.004|"python-httpx/0.28 (drill)"'
    [entry] = parse_lines([line], format_regex(fmt), classifier(target.traffic))
    assert (entry.category, entry.status, entry.request_time) == ("admin", 302, 0.004)


def test_quantile_is_the_nearest_rank() -> None:
    assert quantile([], 0.95) is None
    assert quantile([float(i) for i in range(1, 101)], 0.95) == 95.0
    assert quantile([3.0, 1.0, 2.0], 0.5) == 2.0
