"""Progress lines (issue 18.1): every journal event is also one readable, redacted log line with
the drill's elapsed time; through the plugin they reach pytest's terminal as they happen."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from paths import REFERENCE_TARGET, REPO_ROOT

from rollback_drill.journal import Journal
from rollback_drill.progress import LOGGER, describe

pytest_plugins = ["pytester"]


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_each_event_is_one_line_with_elapsed_time(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    journal = Journal()
    journal.begin("drills/test_x.py::test_y")
    with journal.step("stack", "up", project="rbd-1", services=["nginx", "db"]) as step:
        step.data["base_url"] = "http://127.0.0.1:8080"
    journal.event("baseline", "captured", values={"p95@crud": 0.012345, "err@all": 0}, problems=[])
    journal.event(
        "decision",
        "error_rate",
        decision="roll_back",
        action="phase_1",
        severity="critical",
        measured_value=23.4567,
        threshold=10.0,
        scope="None",
        message="m",
        at=1.0,
    )
    with journal.step("check", "api") as step:
        step.data.update(check="api", passed=False, measured="3 rows", expected="4 rows")
    lines = _lines(caplog)
    assert all("\n" not in ln and ln.startswith("[") and " s] " in ln for ln in lines), lines
    text = "\n".join(lines)
    assert "drill drills/test_x.py::test_y" in text
    assert "stack up ok in 0.0 s: project=rbd-1, services=nginx,db, base_url=http://127" in text
    assert "baseline captured: p95@crud=0.01235, err@all=0" in text
    assert "decision error_rate: roll_back (critical), measured 23.46 vs threshold 10" in text
    assert "-> phase_1" in text
    assert "check api FAILED in 0.0 s: measured 3 rows, expected 4 rows" in text


def test_a_failed_step_says_why_with_its_last_output_and_secrets_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    journal = Journal()
    journal.redact("hunter2")
    with pytest.raises(RuntimeError), journal.step("rollback", "phase1.stop", cmd="x hunter2"):
        journal.events[-1].data["tail"] = ""
        raise RuntimeError("exit 1: hunter2 refused")
    failed = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(failed) == 1
    line = failed[0].getMessage()
    assert "rollback phase1.stop FAILED after" in line and "hunter2" not in line, line
    assert "***" in line


def test_instrument_events_are_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    Journal().event("instrument", "gc pause", duration_ms=3.0)
    assert _lines(caplog) == []


def test_long_and_multiline_values_stay_on_one_short_line() -> None:
    line = describe("script", "rollback.sh", {"phase": "start", "args": ["a\nb" * 200]})
    assert "\n" not in line and len(line) <= 400


def test_the_journal_knows_its_open_steps() -> None:
    journal = Journal()
    assert journal.current_step() is None
    with journal.step("rollback", "phase-1"), journal.step("rollback", "phase1.stop"):
        assert [s.name for s in journal.open_steps()] == ["phase-1", "phase1.stop"]
        current = journal.current_step()
        assert current is not None and current.describe().startswith("rollback phase1.stop (")
    assert journal.open_steps() == []
    with pytest.raises(ValueError), journal.step("check", "x"):
        raise ValueError("no")
    assert journal.open_steps() == []
    failed = journal.last_failed_step()
    assert failed is not None and failed.name == "x"


DRILL = """
import time

def test_drill(drill_target, journal):
    journal.event("marker", "load started")
    with journal.step("fault", "crash_asgi", level=1):
        time.sleep(0.2)
"""


@pytest.fixture
def drill(pytester: pytest.Pytester, tmp_path: Path) -> pytest.Pytester:
    pytester.makepyfile(test_progress_probe=DRILL)
    return pytester


def _args(tmp_path: Path) -> list[str]:
    return [
        "-p",
        "no:cacheprovider",
        f"--drill-target={REFERENCE_TARGET}",
        f"--drill-report-dir={tmp_path / 'reports'}",
    ]


def test_the_lines_reach_the_terminal_before_the_result(
    drill: pytest.Pytester, tmp_path: Path
) -> None:
    res = drill.runpytest_subprocess(*_args(tmp_path))
    res.assert_outcomes(passed=1)
    out = res.stdout.lines
    res.stdout.fnmatch_lines(
        [
            "[[]   0.0 s] drill test_progress_probe.py::test_drill",
            "[[]   0.0 s] load started",
            "[[]   0.* s] fault crash_asgi ...: level=1",
            "[[]   0.* s] fault crash_asgi ok in 0.2 s: level=1",
            ".*[[]100%[]]",
        ]
    )
    result = next(i for i, ln in enumerate(out) if ln.startswith(".") and "100%" in ln)
    assert all("crash_asgi" not in ln for ln in out[result:]), out  # not only at the end


def test_quiet_under_q(drill: pytest.Pytester, tmp_path: Path) -> None:
    res = drill.runpytest_subprocess("-q", *_args(tmp_path))
    res.assert_outcomes(passed=1)
    assert "crash_asgi" not in res.stdout.str()


def test_junit_stays_uncluttered(drill: pytest.Pytester, tmp_path: Path) -> None:
    xml = tmp_path / "junit.xml"
    res = drill.runpytest_subprocess(*_args(tmp_path), f"--junitxml={xml}")
    res.assert_outcomes(passed=1)
    assert "crash_asgi" not in xml.read_text()


def test_a_script_sees_the_same_lines(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    script = pytester.makepyfile(
        script="""
        import logging
        from rollback_drill.journal import Journal
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        j = Journal()
        j.event("marker", "deployed", release="hybrid")
        """
    )
    res = pytester.run("python", str(script))
    assert res.ret == 0
    res.stderr.fnmatch_lines(["[[]   0.0 s] deployed: release=hybrid"])
