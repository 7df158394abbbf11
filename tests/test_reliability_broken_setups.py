"""Proof by breaking things: deliberately wrong set-ups, each of which must make its drill fail
with a JUnit message naming the cause -- run as a user runs drills (pytest in a subprocess),
and leaving nothing behind.

- a rollback that runs the wrong phases (the drill claims 1 -> 2 for a WSGI code defect: the
  executor's chooser picks 1 -> 3, the plan's prescription);
- a fault that misses its aimed level (the drill claims 40 % errors of a release failing 20 %:
  nginx's own log measures ~20 %);
- a container left stopped after a rollback (Redis stopped after the phases ran: the
  checklist's "all containers healthy" names it);
- a probe that crashes (the target's read-back SQL names a table that does not exist: the
  shipped data-corruption drill fails naming the integrity probe's error, never "0 findings");
- a policy changed under a drill (error_rate made "high" in a copy of the policy, its matrix row
  too: the shipped error-rate drill fails naming the severity the plan gives it).

``tests/test_reliability_broken_rollback.py`` is the model: a rollback that ran and did not
fix the defect, caught by the checklist.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import docker
import pytest
import yaml
from reliability_support import NEEDS_DOCKER, ROOT, DrillProcess, drill_dir, leftovers

pytestmark = [pytest.mark.docker, pytest.mark.nightly, NEEDS_DOCKER, pytest.mark.timeout(1800)]

BROKEN = '''
"""Deliberately broken drills on the reference target."""
import time

from rollback_drill.checks.base import require
from rollback_drill.drills._support import (
    check_aimed_level,
    detect,
    execute_rollback,
    faulty_release,
    origin_of,
    scale_budget,
    verify_after_rollback,
    window,
)
from rollback_drill.drills.test_whole_drills import whole  # noqa: F401  (the fixture)
from rollback_drill.faults import faulty_releases as releases


def test_wrong_phases(whole):
    checks = whole(
        lambda run: releases.failing_share(run.stack, 0.25, kind="error", deploy=run.deploy),
        "error_rate",
        (1, 2),
    )
    require(*checks)


def test_missed_aim(drill_run, record_property):
    run = drill_run
    run.capture_baseline()
    fault = releases.failing_share(run.stack, 0.20, kind="error", deploy=run.deploy)
    with faulty_release(run, fault, "crud") as first:
        origin = origin_of(run, fault, first.at)
        check_aimed_level(
            run, "error_rate", "crud", 0.40, since=origin,
            window_s=window(run, "error_rate"), record_property=record_property,
        )


def test_container_left_stopped(drill_run, report_dir, drill_record, plan_defects, record_property):
    run = drill_run
    run.capture_baseline()
    run.backup()
    fault = releases.crashing_asgi(run.stack, deploy=lambda tag: run.deploy(tag, wait=False))
    fault.apply()
    decision = detect(
        run, "asgi_restarts", origin=time.time(), budget_s=scale_budget(run, 600) + 120,
        record_property=record_property,
    ).decision
    result, at = execute_rollback(
        run, (1, 2), decision, sink_path=report_dir / "broken.txt", defects=plan_defects,
        holder="broken set-up", record=drill_record, record_property=record_property,
    )
    run.stack.stop(run.stack.target.services.redis)
    require(*verify_after_rollback(
        run, result, (1, 2), at, "broken", drill_record, record_property
    ))
'''


def failures(junit: Path) -> dict[str, str]:
    """Test name -> its failure (or error) message; '' for a case that passed."""
    out = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        out[str(case.get("name"))] = "" if bad is None else (bad.get("message") or "")
    return out


def run_drills(cwd: Path, args: list[str], junit: Path, timeout_s: float) -> dict[str, str]:
    proc = DrillProcess(
        cwd, [f"--junitxml={junit}", "--drill-require-docker", *args], out_dir=junit.parent
    )
    client = docker.from_env()
    try:
        code = proc.finish(timeout_s)
        assert code == 1, f"exit {code}, expected 1 (tests failed): {proc.output()[-3000:]}"
        for run_id in proc.run_ids():
            assert leftovers(client, run_id) == [], f"run {run_id} left objects behind"
        return failures(junit)
    finally:
        proc.close(client)
        client.close()


def test_broken_drills_fail_naming_their_cause(tmp_path: Path) -> None:
    work = drill_dir(tmp_path, BROKEN, "test_broken_setups.py")
    failed = run_drills(work, [], tmp_path / "junit.xml", 1700)
    assert set(failed) == {"test_wrong_phases", "test_missed_aim", "test_container_left_stopped"}
    assert "chooser picked 1→3" in failed["test_wrong_phases"], failed
    assert "prescribes 1->2" in failed["test_wrong_phases"], failed
    assert "the fault missed its aim" in failed["test_missed_aim"], failed
    assert "error_rate" in failed["test_missed_aim"], failed
    assert "redis" in failed["test_container_left_stopped"], failed


def test_a_crashing_probe_fails_the_shipped_drill_naming_its_error(tmp_path: Path) -> None:
    reference = ROOT / "targets" / "reference.yaml"
    target = yaml.safe_load(reference.read_text())
    target["project_dir"] = str((reference.parent / target["project_dir"]).resolve())
    read_back = target["traffic"]["ledger"]["read_back"][0]
    read_back["sql"] = read_back["sql"].replace("chat_session_chatsession", "chat_sessionx")
    broken = tmp_path / "target.yaml"
    broken.write_text(yaml.safe_dump(target, sort_keys=False))
    failed = run_drills(
        ROOT,
        ["drills/test_triggers.py::test_data_corruption", f"--drill-target={broken}"],
        tmp_path / "junit.xml",
        600,
    )
    message = failed["test_data_corruption"]
    assert "integrity probe raised" in message and "chat_sessionx" in message, failed


def test_a_policy_changed_under_the_drill_fails_it_naming_the_change(tmp_path: Path) -> None:
    policy = yaml.safe_load((ROOT / "rollback_drill" / "policy.yaml").read_text())
    # changed consistently, as a team editing its policy would: the trigger and the matrix rows
    # restating it (a half-edit is refused by the loader, tests/test_policy.py)
    rules = [
        r
        for r in (*policy["triggers"], *policy["matrix"])
        if "error_rate" in (r["id"], r.get("same_as"))
    ]
    assert len(rules) >= 2, rules
    for rule in rules:
        rule["severity"] = "high"
    changed = tmp_path / "policy.yaml"
    changed.write_text(yaml.safe_dump(policy, sort_keys=False))
    failed = run_drills(
        ROOT,
        ["drills/test_triggers.py::test_error_rate", f"--drill-policy={changed}"],
        tmp_path / "junit.xml",
        600,
    )
    message = failed["test_error_rate"]
    assert "severity high, the plan says critical" in message, failed
