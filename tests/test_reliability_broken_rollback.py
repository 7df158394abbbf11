"""A deliberately broken rollback fails its drill, and JUnit's failure message names the check.

The broken plan is a realistic one: a release whose new CRUD code (WSGI) fails 25 % of its
requests is "rolled back" with the configuration-only phases 1 -> 2, named by hand as a team's
own script would (the executor's chooser would pick 1 -> 3: ``test_reliability_broken_setups``
proves that a drill naming the wrong phases fails on it). Phase 2 routes everything
to WSGI -- which still runs the faulty code -- so after the rollback the validation checklist
finds the error rate far above 1 %. The whole drill, run in a pytest subprocess exactly as a
user runs drills, must fail; the failure message in its JUnit test case must name that check;
and the run must leave nothing behind.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import docker
import pytest
from reliability_support import NEEDS_DOCKER, DrillProcess, drill_dir, leftovers

pytestmark = [pytest.mark.docker, pytest.mark.nightly, NEEDS_DOCKER, pytest.mark.timeout(600)]

BROKEN = '''
"""A config-only rollback of a defect in the WSGI code, run as a team's own script would:
phases 1 -> 2 named by hand, not chosen (the chooser would pick 1 -> 3)."""
import time

from rollback_drill.checks.base import require
from rollback_drill.drills._support import (
    detect,
    execute_rollback,
    scale_budget,
    verify_after_rollback,
)
from rollback_drill.faults import faulty_releases as releases


def test_config_only_rollback_of_a_wsgi_code_defect(
    drill_run, report_dir, drill_record, plan_defects, record_property
):
    run = drill_run
    run.capture_baseline()
    run.backup()
    fault = releases.failing_share(run.stack, 0.25, kind="error", deploy=run.deploy)
    fault.apply()
    decision = detect(
        run, "error_rate", origin=time.time(), budget_s=scale_budget(run, 60) + 60,
        record_property=record_property,
    ).decision
    result, at = execute_rollback(
        run, (1, 2), decision, sink_path=report_dir / "broken.txt", defects=plan_defects,
        holder="broken rollback", record=drill_record, record_property=record_property,
    )
    require(*verify_after_rollback(
        run, result, (1, 2), at, "broken", drill_record, record_property
    ))
'''


def test_broken_rollback_fails_naming_the_failing_check(tmp_path: Path) -> None:
    work = drill_dir(tmp_path, BROKEN, "test_broken_rollback.py")
    junit = tmp_path / "junit.xml"
    proc = DrillProcess(work, [f"--junitxml={junit}", "--drill-require-docker"])
    client = docker.from_env()
    try:
        code = proc.finish(540)
        out = proc.output()
        assert code == 1, out[-3000:]  # 1: a test failed (not an error, not a pass)
        cases = list(ET.parse(junit).getroot().iter("testcase"))
        assert [c.get("name") for c in cases] == ["test_config_only_rollback_of_a_wsgi_code_defect"]
        failure = cases[0].find("failure")
        assert failure is not None, ET.tostring(cases[0], encoding="unicode")[:2000]
        message = failure.get("message", "")
        assert "FAIL Error rate < 1%" in message, message
        # the rollback itself ran and was timed: the failure is the checklist's, not a crash
        props = {p.get("name"): p.get("value") for p in cases[0].iter("property")}
        assert props.get("phase") == "1→2" and props.get("time_to_rollback_s"), props
        for run_id in proc.run_ids():
            assert leftovers(client, run_id) == [], f"run {run_id} left objects behind"
    finally:
        proc.close(client)
        client.close()
