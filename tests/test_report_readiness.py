"""The drill report lists the target's readiness findings first (issue 22 §3): the HTML page
shows them before the summary and the drills (severity, file:line, the plan step each breaks,
the fix), the JUnit file has them as testsuite properties, and they fail no drill.

The rendering needs nothing; the session test runs the plugin in a subprocess on the example
target with a drill that starts no stack: the review's static part needs the Compose binary
(``docker compose config``), not the daemon.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import pytest
from paths import REPO_ROOT

from rollback_drill.errors import ComposeMissing
from rollback_drill.fixtures.report import readiness_properties
from rollback_drill.preflight import check_compose
from rollback_drill.readiness import Finding, Review
from rollback_drill.report import DrillSummary, RunReport, render_html

pytest_plugins = ["pytester"]

EXAMPLE = REPO_ROOT / "examples" / "notes" / "target.yaml"


def _review() -> Review:
    review = Review("notes-example", ("v1", "v2"), duration_s=1.4)
    review.add(
        Finding(
            "warning",
            "connection-limit",
            "deploy/nginx/default.conf",
            40,
            "limit_conn conns 10: the drill's load keeps up to 64 requests in flight",
            "the latency triggers",
            "raise the limit to at least 64",
            ("v1",),
        )
    )
    review.add(
        Finding(
            "error",
            "container-name",
            "compose.yaml",
            27,
            "service web: fixed container_name notes-web",
            "Phase 2 step 3 (`up -d --scale` needs one name per container)",
            "remove container_name",
            ("v1", "v2"),
        )
    )
    review.checked.append("v1: nginx -t passes in nginx:1.22 (1 file(s))")
    return review


def test_findings_render_before_the_summary_and_the_drills() -> None:
    report = RunReport("r1", "now", readiness=_review().to_dict())
    report.drills.append(DrillSummary("drills/test_x.py::test_passes", "passed", 3.0))
    page = render_html(report)
    where = {
        name: page.index(text)
        for name, text in {
            "readiness": "<section id='readiness'>",
            "error": "compose.yaml:27",
            "warning": "deploy/nginx/default.conf:40",
            "summary": "<h2>Summary</h2>",
            "drill": 'id="drills/test_x.py::test_passes"',
        }.items()
    }
    # first the section, errors before warnings, then the summary and the drills
    assert where["readiness"] < where["error"] < where["warning"] < where["summary"]
    assert where["summary"] < where["drill"]
    section = page[where["readiness"] : where["summary"]]
    assert "1 error(s), 1 warning(s), 0 info" in section
    assert "<td class='sev-error'>error</td><td>compose.yaml:27</td><td>v1, v2</td>" in section
    assert "Phase 2 step 3 (`up -d --scale` needs one name per container)" in section
    assert "remove container_name" in section
    assert "not fail the drills" in section
    assert "v1: nginx -t passes" in section
    assert page.count(">PASSED in") == 1  # the drill's outcome is its own


def test_a_review_that_could_not_run_says_why_and_no_review_no_section() -> None:
    failed = RunReport("r1", "now", readiness={"target": "t.yaml", "not_run": "TargetError: x"})
    assert "Not reviewed: TargetError: x" in render_html(failed)
    assert "id='readiness'" not in render_html(RunReport("r1", "now"))


def test_junit_properties() -> None:
    props = readiness_properties(_review().to_dict())
    assert props[:2] == [("readiness_errors", 1), ("readiness_warnings", 1)]
    assert ("readiness_s", 1.4) in props
    found = [v for k, v in props if k == "readiness_finding"]
    assert found[0] == (
        "error compose.yaml:27 [v1, v2]: service web: fixed container_name notes-web; "
        "breaks: Phase 2 step 3 (`up -d --scale` needs one name per container); "
        "fix: remove container_name"
    )
    assert len(found) == 2
    assert readiness_properties({"not_run": "x"}) == [("readiness", "not reviewed: x")]


def test_a_drill_session_reviews_its_target_once(pytester: pytest.Pytester) -> None:
    """Two drills that start no stack, on the example target: the report and the JUnit file
    carry its findings (the example's fixed container name among them), the drills pass."""
    try:
        check_compose()
    except ComposeMissing as exc:
        pytest.skip(f"needs docker compose: {exc}")
    pytester.makepyfile(
        test_drills="""
def test_one(drill_target, report_location):
    assert drill_target.name == "notes-example"

def test_two(drill_target, report_location):
    pass
"""
    )
    reports = pytester.path / "reports"
    res = pytester.runpytest_subprocess(
        f"--drill-target={EXAMPLE}",
        f"--drill-report-dir={reports}",
        f"--junitxml={reports / 'junit.xml'}",
        "-p",
        "no:cacheprovider",
    )
    res.assert_outcomes(passed=2)
    (page,) = [p.read_text() for p in reports.glob("*/report.html")]
    assert page.index("<section id='readiness'>") < page.index("<h2>Summary</h2>")
    assert "container_name notes-web" in page and "examples/notes/compose.yaml:" in page
    suite = ET.parse(reports / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    props = [(p.get("name"), p.get("value")) for p in suite.iter("property")]
    errors = [int(v or 0) for k, v in props if k == "readiness_errors"]
    assert len(errors) == 1 and errors[0] > 0  # once per session
    assert any(
        k == "readiness_finding" and "container_name notes-web" in (v or "") for k, v in props
    )


def test_review_target_says_why_it_could_not_run(tmp_path: Path) -> None:
    from rollback_drill.fixtures.options import SETTINGS
    from rollback_drill.fixtures.report import review_target

    settings = {"drill_target": tmp_path / "nope.yaml", "drill_load_rate": 40.0}
    said = review_target(SimpleNamespace(stash={SETTINGS: settings}))  # type: ignore[arg-type]
    assert said["not_run"].startswith("TargetError: ") and "not found" in said["not_run"]
