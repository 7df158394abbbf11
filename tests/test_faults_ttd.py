"""The time-to-detect table read from the drills' JUnit reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollback_drill.faults.ttd import collect, main, table

REPORT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
<testcase classname="drills.test_triggers" name="test_error_rate" time="70">
  <properties>
    <property name="trigger" value="error_rate"/>
    <property name="time_to_detect_s" value="{ttd}"/>
    <property name="injected_level" value="0.2"/>
    <property name="steady_value" value="{level}"/>
  </properties>
</testcase>
<testcase classname="drills.test_triggers" name="test_memory_leak" time="90">
  <properties><property name="trigger" value="memory_leak"/></properties>
  <failure message="boom"/>
</testcase>
</testsuite></testsuites>
"""


def reports(tmp_path: Path) -> list[Path]:
    paths = []
    for n, (ttd, level) in enumerate([(1.0, 0.201), (3.0, 0.199), (2.0, 0.2)]):
        path = tmp_path / f"run-{n}.xml"
        path.write_text(REPORT.format(ttd=ttd, level=level))
        paths.append(path)
    return paths


def test_median_over_runs_and_failures_counted(tmp_path: Path) -> None:
    rows = {r.drill: r for r in collect(reports(tmp_path))}
    assert rows["test_error_rate"].times == [1.0, 3.0, 2.0]
    assert rows["test_memory_leak"].failed == 3 and rows["test_memory_leak"].times == []
    text = table(list(rows.values()))
    assert "| test_error_rate | error_rate | 3 | 2.0 | 1.0 | 3.0 | 0.2 -> 0.201" in text
    assert "| test_memory_leak | memory_leak | 0 (+3 failed) | - | - | - |" in text


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(p) for p in reports(tmp_path)]) == 0
    assert "median TTD s" in capsys.readouterr().out
    assert main([]) == 2


def test_a_case_that_failed_after_detection_is_timed_and_marked(tmp_path: Path) -> None:
    path = tmp_path / "run.xml"
    path.write_text(
        """<testsuites><testsuite name="pytest">
<testcase classname="drills.test_triggers" name="test_wsgi_p95_latency" time="60">
  <properties>
    <property name="trigger" value="wsgi_p95_latency"/>
    <property name="time_to_detect_s" value="3.0"/>
  </properties>
  <failure message="measured 2.88 vs injected 2.54"/>
</testcase></testsuite></testsuites>"""
    )
    (row,) = collect([path])
    assert row.times == [3.0] and row.failed == 1 and row.failed_after_detect == 1
    assert "| 1 (1 failed after detection) | 3.0 |" in table([row])
