"""Reports from the real outcome (issue 17 item 7): Lessons Learned and the announcements for
every drill, failed rollbacks included, the announcement's timeline as the plan writes it, and
the staging drill's clock from the marks of the script as it ran."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from rollback_drill.announce import Announcement, FileSink, StatusUpdates
from rollback_drill.checks.base import CheckResult
from rollback_drill.compose import CommandResult
from rollback_drill.errors import RollbackError
from rollback_drill.plan_scripts import staging_clock
from rollback_drill.report import (
    DrillSummary,
    RunReport,
    lessons_from_summary,
    lessons_learned,
    render_html,
    rollback_executed,
)
from rollback_drill.rollback.executor import RollbackResult, _announce_completion
from rollback_drill.rollback.steps import PhaseResult, StepResult

T0 = 1_800_000_000.0
OK = CheckResult("Health endpoint returns 200 (/api/health/)", True, 200, "status 200")
BAD = CheckResult("Error rate < 1%", False, 0.04, "< 1% over >= 20 requests")


def _phase(n: int, status: str, *steps: tuple[str, str, int]) -> PhaseResult:
    p = PhaseResult(n, f"Phase{n}", 60.0, T0 + n, 3.0 * n, status=status)
    p.steps += [
        StepResult(n, name, cmd, rc, 0.5, f"out\nlast line of {name}") for name, cmd, rc in steps
    ]
    return p


def complete() -> RollbackResult:
    r = RollbackResult((1, 2), T0, finished=T0 + 9)
    r.phases = [
        _phase(1, "ok", ("stop_asgi", "docker compose stop backend-asgi", 0)),
        _phase(2, "ok"),
    ]
    return r


def failed_at_3() -> RollbackResult:
    r = RollbackResult((1, 3), T0, finished=T0 + 12)
    r.phases = [
        _phase(1, "ok"),
        _phase(3, "failed", ("build_wsgi", "docker compose build backend-wsgi", 1)),
    ]
    r.error = "phase 3 (Phase3), step build_wsgi: `docker compose build backend-wsgi` failed"
    return r


def test_rollback_executed_from_the_real_outcome() -> None:
    assert rollback_executed(None) == "No (not run)"
    assert rollback_executed(complete()) == "Yes"
    assert rollback_executed(failed_at_3()) == ("Partial: phases 1 done; phase 3 (Phase3) failed")
    first = RollbackResult((1, 2), T0)
    first.phases = [_phase(1, "failed")]
    first.error = "lock held"
    assert rollback_executed(first) == "No: phase 1 (Phase1) failed"
    fallback = failed_at_3()
    fallback.error = None
    fallback.fallback = True
    fallback.phases.append(_phase(5, "ok"))
    assert rollback_executed(fallback) == "Yes (via Phase 5, after phase 3 failed)"


def test_lessons_of_a_failed_rollback_name_the_failing_step_and_checks() -> None:
    lessons = lessons_learned("error_rate", failed_at_3(), [OK, BAD], failure="boom", date="d")
    assert lessons["Rollback Executed"].startswith("Partial")
    assert lessons["Time to Rollback"] == "12.0 s (phases 1→3), until it stopped"
    didnt = lessons["What Didn't Work"]
    assert "phase 3 (Phase3) failed" in didnt
    assert "step p3.build_wsgi: `docker compose build backend-wsgi` exit 1: last line" in didnt
    assert "last line of build_wsgi" in didnt and "FAIL Error rate < 1%" in didnt
    assert "drill failed: boom" in didnt
    assert lessons["What Worked"].startswith("phase 1 (Phase1) in 3.0 s; Health endpoint")


def test_lessons_of_a_complete_rollback_and_of_none() -> None:
    done = lessons_learned("crash loop", complete(), [OK])
    assert done["Rollback Executed"] == "Yes" and done["What Didn't Work"] == "nothing"
    assert done["Time to Rollback"] == "9.0 s (phases 1→2)"
    none = lessons_learned("no decision", None, failure="TimeoutError: no decision")
    assert none["Rollback Executed"] == "No (not run)"
    assert none["Time to Rollback"] == "n/a: no rollback ran"
    assert none["What Didn't Work"] == "drill failed: TimeoutError: no decision"


def test_every_drill_gets_lessons_in_the_html_report() -> None:
    failed = DrillSummary("drills/x.py::test_a", "failed", 3.0, failure="AssertionError: late")
    failed.properties = {"trigger": "error_rate", "decision": "rollback: immediate"}
    failed.lessons = lessons_from_summary(failed)
    assert failed.lessons["Rollback Executed"] == "No (not run)"
    assert failed.lessons["What Didn't Work"] == "AssertionError: late"
    phase = DrillSummary("drills/y.py::test_b", "passed", 3.0)
    phase.properties = {"time_to_rollback_s": 12.5, "phase": "1→2", "check:Error rate < 1%": "pass"}
    assert lessons_from_summary(phase)["Rollback Executed"] == "Yes"
    phase.properties["failed_phase"] = 3
    assert (
        lessons_from_summary(phase)["Rollback Executed"]
        == "Yes (via Phase 5, after phase 3 failed)"
    )
    page = render_html(RunReport("r", "now", drills=[failed]))
    assert "Rollback Lessons Learned" in page and "No (not run)" in page


@dataclass
class ListSink:
    sent: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, subject: str, text: str) -> str:
        with self.lock:
            self.sent.append((subject, text))
        return "list"


def _ctx(sink: Any, announcement: Announcement | None) -> Any:
    events: list[tuple[str, str, dict[str, Any]]] = []
    journal = SimpleNamespace(event=lambda kind, name, **data: events.append((kind, name, data)))
    return SimpleNamespace(
        announcement=announcement, sink=sink, stack=SimpleNamespace(journal=journal), events=events
    )


def _announcement(interval: float = 300.0, scale: float = 1.0) -> Announcement:
    return Announcement("error rate > 10 %", T0, 300.0, "impact", interval, scale)


def test_a_failed_rollback_announces_its_failure() -> None:
    sink = ListSink()
    _announce_completion(_ctx(sink, _announcement()), failed_at_3())
    [(subject, text)] = sink.sent
    assert subject.endswith(" - FAILED") and "FAILED: manual intervention needed" in text
    assert "- Rolled back: phase 1 (Phase1)" in text and "step build_wsgi" in text
    sink.sent.clear()
    _announce_completion(_ctx(sink, _announcement()), complete())
    [(subject, text)] = sink.sent
    assert subject.endswith(" - complete") and "all phases within budget" in text


def test_announced_nothing_sends_nothing_but_says_so() -> None:
    sink = ListSink()
    ctx = _ctx(sink, None)
    _announce_completion(ctx, failed_at_3())
    assert sink.sent == [] and ctx.events[0][2]["why"] == "not announced"


def test_expected_completion_is_start_plus_the_success_criterion() -> None:
    text = _announcement(interval=30.0, scale=10.0).render()
    assert "(start + 5 minutes)" in text
    assert "- Status updates: Every 30 seconds (the plan's 5 minutes, time-scaled 10x)" in text
    assert "- Status updates: Every 5 minutes\n" in _announcement().render()


def test_status_updates_at_the_interval_while_the_rollback_runs(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "channel.txt")
    ann = Announcement("reason", time.time(), 300.0, "impact", status_interval_s=0.5)
    state = ["phase 1 (Stop Deployment) running"]

    def until(count: int) -> None:  # poll: a busy host delays a thread, never skips an update
        deadline = time.monotonic() + 10
        while updates.sent < count and time.monotonic() < deadline:
            time.sleep(0.02)

    with StatusUpdates(sink, lambda: ann, lambda: state[0]) as updates:
        until(1)
        first_at = time.time()
        state[0] = "phase 1 done; phase 2 running"
        until(2)
    sent = updates.sent
    assert first_at - ann.started >= 0.5  # not before the interval
    time.sleep(0.8)  # stopped: nothing more
    text = sink.path.read_text()
    assert sent >= 2 and updates.sent == sent and text.count("Subject: ") == sent
    assert "status update 1" in text and "Now: phase 1 (Stop Deployment) running" in text
    assert "Now: phase 1 done; phase 2 running" in text and "Next update in 0.5 seconds" in text


def test_status_updates_wait_for_the_announcement() -> None:
    sink = ListSink()
    with StatusUpdates(sink, lambda: None, lambda: "x"):
        time.sleep(0.3)
    assert sink.sent == []


def _res(stdout: str, rc: int = 0) -> CommandResult:
    return CommandResult(["bash", "staging-drill.sh"], rc, 1.0, stdout, "")


MARKS = """\
== deploy-hybrid.sh start 100.0
== deploy-hybrid.sh end 130.5 exit 0
== rollback-config.sh start 135.5
cp: cannot stat '/etc/nginx/nginx.conf.backup': No such file or directory
== rollback-config.sh end 139.0 exit 1
== verify-rollback.sh start 139.5
== verify-rollback.sh end 142.0 exit 1
"""


def test_staging_clock_times_the_scripts_as_they_ran() -> None:
    clock = staging_clock(_res(MARKS, 1))
    assert clock.rollback_s == pytest.approx(3.5)
    assert clock.spans["deploy-hybrid.sh"] == pytest.approx(30.5)
    assert clock.exits == {"deploy-hybrid.sh": 0, "rollback-config.sh": 1, "verify-rollback.sh": 1}
    assert clock.verified_s == pytest.approx(3.5 + 0.5 + 2.5)


def test_a_missing_timing_mark_fails_instead_of_counting_zero() -> None:
    lines = [ln for ln in MARKS.splitlines() if "rollback-config.sh end" not in ln]
    with pytest.raises(RollbackError, match=r"no timing mark '== rollback-config.sh end'"):
        staging_clock(_res("\n".join(lines), 1))
    with pytest.raises(RollbackError, match=r"deploy-hybrid\.sh start"):
        staging_clock(_res("", 127))
    with pytest.raises(RollbackError, match="unreadable timing mark"):
        staging_clock(_res("== rollback-config.sh start soon\n"))
