"""Diagnostics of a failed drill (issue 18.2), without Docker: what is read from a stack, how
it is journaled and redacted, and a wait's diagnosis at its timeout."""

from __future__ import annotations

from typing import Any

import pytest

from rollback_drill.diagnostics import capture
from rollback_drill.journal import Journal
from rollback_drill.wait import WaitTimeout, wait_until


class FakeStack:
    project = "rbd-test"

    def __init__(self, journal: Journal, *, logs_fail: str = "") -> None:
        self.journal = journal
        self.logs_fail = logs_fail

    def ps(self) -> list[dict[str, Any]]:
        return [
            {"Service": "web", "Name": "rbd-test-web-1", "State": "restarting", "ExitCode": 3},
            {"Service": "db", "Name": "rbd-test-db-1", "State": "running", "Health": "healthy"},
        ]

    def logs(self, service: str, tail: int = 100) -> str:
        if service == self.logs_fail:
            raise RuntimeError("daemon went away")
        return f"{service} line 1\n{service} crashed: password=s3cret\n"


def test_ps_logs_and_the_failing_step_are_read_journaled_and_redacted() -> None:
    journal = Journal()
    journal.redact("s3cret")
    with pytest.raises(RuntimeError), journal.step("rollback", "phase1.stop") as step:
        step.data.update(cmd="docker compose stop web", returncode=1, tail="out 1\nno such s3cret")
        raise RuntimeError("exit 1")
    text = capture(FakeStack(journal, logs_fail="db"), "drill failed")
    assert "s3cret" not in text
    assert "failing step: rollback phase1.stop (RuntimeError: exit 1)" in text
    assert "  command: docker compose stop web" in text and "    no such ***" in text
    assert "$ docker compose ps -a" in text and "rbd-test-web-1  restarting" in text
    assert "$ docker compose logs --tail 40 web\nweb line 1\nweb crashed: password=***" in text
    assert "(docker compose logs failed: RuntimeError: daemon went away)" in text
    event = journal.of_kind("diagnostics")[-1]
    assert event.name == "rbd-test" and event.data["reason"] == "drill failed"
    assert "s3cret" not in str(event.data) and set(event.data["logs"]) == {"db", "web"}


def test_a_hang_names_the_step_still_running() -> None:
    journal = Journal()
    with journal.step("deploy", "hybrid"):
        text = capture(FakeStack(journal), "time limit")
    assert "running step: deploy hybrid (running for 0 s)" in text


def test_a_wait_that_times_out_adds_the_diagnosis_below_its_one_line_cause() -> None:
    with pytest.raises(WaitTimeout) as info:
        wait_until(
            lambda: False,
            timeout_s=0.05,
            interval_s=0.01,
            what="web to be healthy",
            hint="see its logs",
            diagnose=lambda: "web | boot\n\nweb | Traceback: ImportError\n",
        )
    first, *rest = str(info.value).splitlines()
    assert first == "waited 0 s for web to be healthy; last seen: False (see its logs)"
    assert rest == ["web | boot", "web | Traceback: ImportError"]


def test_a_diagnosis_that_fails_is_named_not_raised() -> None:
    def broken() -> str:
        raise OSError("no daemon")

    with pytest.raises(WaitTimeout, match=r"(?s)\(diagnosis failed: OSError: no daemon\)"):
        wait_until(lambda: False, timeout_s=0.01, interval_s=0.01, what="x", diagnose=broken)
