"""Time limits (issue 18.3): every drill runs under pytest-timeout with its marker's budget,
``--drill-timeout``/``RBD_TIMEOUT``/ini ``drill_timeout`` for all drills, a timeout marker on
the test above both; a drill that hangs fails naming the journal step it hung in. (That its
stack is then torn down: ``test_diagnostics_docker.py``.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from paths import REFERENCE_TARGET

pytest_plugins = ["pytester"]

PROBES = """
import pytest

def _limit(request):
    marker = request.node.get_closest_marker("timeout")
    print(request.node.name, "LIMIT", marker.args[0] if marker else None)

@pytest.mark.quick
@pytest.mark.full
def test_quick(drill_target, request):
    _limit(request)

@pytest.mark.full
@pytest.mark.nightly
def test_full(drill_target, request):
    _limit(request)

def test_unmarked(drill_target, request):
    _limit(request)

@pytest.mark.quick
@pytest.mark.timeout(5)
def test_own_marker(drill_target, request):
    _limit(request)

def test_not_a_drill(request):
    _limit(request)
"""

HANG = """
import time

def test_hangs(drill_target, journal):
    with journal.step("rollback", "phase-1"), journal.step("rollback", "phase1.stop_asgi"):
        time.sleep(60)
"""


def _args(tmp_path: Path) -> list[str]:
    return [
        "-s",
        "-p",
        "no:cacheprovider",
        f"--drill-target={REFERENCE_TARGET}",
        f"--drill-report-dir={tmp_path / 'reports'}",
    ]


def test_a_budget_per_marker_and_the_marker_on_the_test_wins(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(test_probes=PROBES)
    res = pytester.runpytest_subprocess(*_args(tmp_path))
    res.assert_outcomes(passed=5)
    res.stdout.fnmatch_lines_random(
        [
            "*test_quick LIMIT 600.0*",
            "*test_full LIMIT 1800.0*",
            "*test_unmarked LIMIT 3600.0*",
            "*test_own_marker LIMIT 5*",
            "*test_not_a_drill LIMIT None*",
        ]
    )


def test_the_drill_option_beats_the_budgets_but_not_the_marker(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_probes=PROBES)
    pytester.makeini("[pytest]\ndrill_timeout = 99\n")
    res = pytester.runpytest_subprocess(*_args(tmp_path))
    res.stdout.fnmatch_lines_random(["*test_quick LIMIT 99.0*", "*test_own_marker LIMIT 5*"])
    monkeypatch.setenv("RBD_TIMEOUT", "77")
    res = pytester.runpytest_subprocess(*_args(tmp_path))
    res.stdout.fnmatch_lines_random(["*test_full LIMIT 77.0*"])
    res = pytester.runpytest_subprocess(*_args(tmp_path), "--drill-timeout=0")
    res.stdout.fnmatch_lines_random(["*test_unmarked LIMIT 0.0*"])
    monkeypatch.setenv("RBD_TIMEOUT", "-1")
    res = pytester.runpytest_subprocess(*_args(tmp_path))
    res.stderr.fnmatch_lines(["*environment RBD_TIMEOUT='-1': must be >= 0 seconds*"])


def test_a_hung_drill_fails_naming_the_step_it_hung_in(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(test_hang=HANG)
    xml = tmp_path / "junit.xml"
    res = pytester.runpytest_subprocess(*_args(tmp_path), "--drill-timeout=2", f"--junitxml={xml}")
    res.assert_outcomes(failed=1)
    expected = (
        "*drill timed out: time limit 2 s passed (2 s since its set-up began), in step "
        "rollback phase-1 (running for 2 s) > rollback phase1.stop_asgi (running for 2 s)*"
    )
    res.stdout.fnmatch_lines([expected])
    assert "phase1.stop_asgi (running for 2 s)" in xml.read_text()
    assert res.duration < 30
    journal = next((tmp_path / "reports").glob("*/journal.jsonl")).read_text().splitlines()
    ends = [json.loads(line) for line in journal if '"end"' in line]
    assert [e["name"] for e in ends] == ["phase1.stop_asgi", "phase-1"]
    assert all(e["status"] == "failed" and "drill timed out" in e["error"] for e in ends)
