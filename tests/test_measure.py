from __future__ import annotations

from pathlib import Path

from rollback_drill.rollback.measure import main, phase_samples, summary

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
<testcase classname="drills.test_rollback_phases" name="test_rollback_phases[1-2]" time="40">
<properties><property name="phase" value="1→2"/><property name="phase:1_s" value="{p1}"/>
<property name="phase:2_s" value="{p2}"/><property name="step:p2.scale_wsgi_s" value="9"/>
</properties></testcase>
<testcase classname="drills.test_rollback_phases" name="test_rollback_phases[1-3]" time="40">
<properties><property name="phase:3_s" value="99"/></properties><failure message="x"/></testcase>
</testsuite></testsuites>
"""


def test_medians_over_reports_skip_failed_drills(tmp_path: Path, capsys: object) -> None:
    paths = []
    for i, (p1, p2) in enumerate([(1.0, 12.0), (2.0, 10.0), (1.5, 30.0)]):
        path = tmp_path / f"phases-{i}.xml"
        path.write_text(JUNIT.format(p1=p1, p2=p2))
        paths.append(path)
    samples = phase_samples(paths)
    assert sorted(v for _, v in samples[2]) == [10.0, 12.0, 30.0]
    assert 3 not in samples  # the failed drill's phase is not a measurement
    text = summary(paths)
    assert "2 Quick Rollback (Configuration Only)" in text and "12.0" in text
    assert main([str(p) for p in paths]) == 0
    assert main([]) == 2
