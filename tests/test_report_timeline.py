"""The HTML report's timeline: numbered markers staggered and listed beside the plot, the
fired trigger's threshold drawn, and the run's data embedded for ``rollback-drill report``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rollback_drill.report import (
    DrillSummary,
    RunReport,
    Timeline,
    marker_rows,
    plot_timeline,
    render_html,
    stagger,
    threshold_of,
)

T0 = 1_800_000_000.0
# a whole drill's events, several of them seconds apart (they overlapped as rotated labels)
EVENTS = [
    (0.0, "load started"),
    (24.5, "baseline captured"),
    (25.1, "backups taken"),
    (25.9, "deploy hybrid"),
    (38.2, "hybrid deployed"),
    (38.3, "monitor started"),
    (41.0, "fault live"),
    (45.2, "decision error_rate"),
    (46.0, "rollback start"),
    (61.7, "rollback end"),
    (95.0, "checklist done"),
]


def summary(trigger: str = "error_rate", threshold: object = 0.1) -> DrillSummary:
    tl = Timeline()
    for dt, label in EVENTS:
        tl.mark(T0 + dt, label.replace("error_rate", trigger))
    tl.series["error_rate"] = [(T0 + s, 0.3 if 41 <= s <= 50 else 0.002) for s in range(100)]
    tl.series["p95_s"] = [(T0 + s, 0.9 if 41 <= s <= 50 else 0.05) for s in range(100)]
    tl.series["memory:backend-wsgi-1"] = [(T0 + s, 0.4) for s in range(100)]
    return DrillSummary(
        "drills/test_whole_drills.py::test_x",
        "passed",
        100.0,
        {
            "trigger": trigger,
            "threshold": threshold,
            "measured_value": 0.31,
            "time_to_detect_s": 4.2,
        },
        timeline=tl,
    )


def test_markers_seconds_apart_get_rows_of_their_own() -> None:
    rows = stagger([0.0, 24.5, 25.1, 25.9, 38.2, 38.3, 41.0], min_gap=3.0)
    assert rows[1:4] == [0, 1, 2]  # three events within 1.4 s: three rows
    assert rows[4] != rows[5]  # 0.1 s apart
    assert rows[6] not in (rows[4], rows[5])  # 2.7 s after both
    assert stagger([0.0, 10.0, 20.0], min_gap=3.0) == [0, 0, 0]  # far apart: one row


def test_markers_are_numbered_in_time_order_from_the_plot_origin() -> None:
    rows = marker_rows(summary().timeline or Timeline())
    assert [n for n, _, _ in rows] == list(range(1, len(EVENTS) + 1))
    assert [(round(x, 1), label) for _, x, label in rows] == [(dt, lb) for dt, lb in EVENTS]


@pytest.mark.parametrize(
    ("trigger", "threshold", "metric", "bounds"),
    [
        ("error_rate", 0.1, "error_rate", (0.1,)),
        ("wsgi_p95_latency", "0.104", "p95_latency", (0.104,)),  # as read back from JUnit
        ("performance_degradation", [0.078, 0.104], "p95_latency", (0.078, 0.104)),  # a band
        ("auth_failures", 0.05, "auth_failure_rate", (0.05,)),  # not a plotted metric
    ],
)
def test_the_fired_triggers_threshold(
    trigger: str, threshold: object, metric: str, bounds: tuple[float, ...]
) -> None:
    th = threshold_of(summary(trigger, threshold))
    assert th is not None
    assert (th.metric, th.bounds, th.measured) == (metric, bounds, 0.31)
    assert th.at == T0 + 45.2  # the decision's marker
    assert plot_timeline(summary(trigger, threshold).timeline or Timeline(), th).startswith(
        b"\x89PNG"
    )


def test_no_decision_no_threshold() -> None:
    d = summary()
    d.properties.pop("trigger")
    assert threshold_of(d) is None


def test_the_page_lists_every_marker_beside_the_plot_and_embeds_its_data(tmp_path: Path) -> None:
    report = RunReport("abc123", "2026-01-05 02:17:00 UTC", drills=[summary()])
    report.defects.append({"id": "phase2-wrong-path", "plan_says": "x"})
    page = render_html(report)
    legend = page[page.index('<div class="timeline">') :]
    for n, (dt, label) in enumerate(EVENTS, 1):
        assert f"<td>{n}</td><td>{dt:.1f}</td><td>{label}</td>" in legend
    assert "Dotted: the threshold of error_rate (error_rate): 0.1, measured 0.31." in page
    m = re.search(r'<script type="application/json" id="rbd-run-data">(.*?)</script>', page)
    assert m is not None
    data = json.loads(m.group(1))
    assert data["drills"][0]["properties"]["time_to_detect_s"] == 4.2
    assert data["drills"][0]["outcome"] == "passed"
    assert data["defects"] == [{"id": "phase2-wrong-path", "seen_in": []}]


def test_embedded_data_cannot_close_its_script_element() -> None:
    d = summary()
    d.properties["note"] = "</script><b>x</b>"
    page = render_html(RunReport("r", "now", drills=[d]))
    m = re.search(r'id="rbd-run-data">(.*?)</script>', page, re.DOTALL)
    assert m is not None
    assert json.loads(m.group(1))["drills"][0]["properties"]["note"] == "</script><b>x</b>"
