from __future__ import annotations

import json
from pathlib import Path

import pytest

from rollback_drill.compose import CommandResult
from rollback_drill.defects import KNOWN, DefectLog, PlanDefect, evidence_of
from rollback_drill.journal import Journal

# the defects issue 5 names, each with the step the executor uses instead
EXPECTED = {
    "nginx-backup-name",
    "backup-commit-empty",
    "previous-commit-empty",
    "slack-notify-missing",
    "phase2-up-restarts-asgi",
    "phase4-after-phase3-noop",
    "phase4-verify-dt",
    "phase5-exec-after-down",
    "phase5-dump-missing",
    "backup-dump-plain-sql",
    "backup-dump-host-path",
}


def test_registry_names_what_the_plan_says_and_the_corrected_step() -> None:
    assert set(KNOWN) == EXPECTED
    for known in KNOWN.values():
        assert known.plan_says and known.corrected_step and known.where


def test_record_keeps_evidence_and_writes_a_journal_event(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.jsonl")
    log = DefectLog(journal)
    res = CommandResult(["bash", "-c", "command -v slack-notify"], 1, 0.01, "", "")
    defect = log.record(
        "slack-notify-missing", "not installed", evidence_of(res), seen_in="phase 1"
    )
    assert isinstance(defect, PlanDefect) and defect.id == "slack-notify-missing"
    assert "command -v slack-notify" in defect.evidence and "exit 1" in defect.evidence
    assert defect.plan_says == KNOWN["slack-notify-missing"].plan_says
    event = json.loads((tmp_path / "j.jsonl").read_text().splitlines()[-1])
    assert event["kind"] == "defect" and event["name"] == "slack-notify-missing"
    assert event["corrected_step"] and event["evidence"] and event["seen_in"] == "phase 1"


def test_a_defect_is_listed_once_with_every_drill_that_saw_it() -> None:
    log = DefectLog()
    first = log.record("phase5-dump-missing", "first", "e1", seen_in="drill a")
    log.record("phase5-dump-missing", "second", "e2", seen_in="drill b")
    assert len(log) == 1 and "phase5-dump-missing" in log
    assert log.defects == [first] and log.seen_in("phase5-dump-missing") == ["drill a", "drill b"]


def test_unknown_defect_ids_are_refused() -> None:
    with pytest.raises(KeyError, match="unknown plan defect"):
        DefectLog().record("made-up", "x", "y")


def test_evidence_of_commands_and_text() -> None:
    res = CommandResult(["pg_restore", "--list", "/backups/x"], 1, 0.25, "", "no such file\n")
    text = evidence_of(res, "and a note")
    assert text.splitlines()[0] == "$ pg_restore --list /backups/x  → exit 1 (0.25 s)"
    assert "no such file" in text and text.endswith("and a note")
