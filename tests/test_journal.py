from __future__ import annotations

import json
from pathlib import Path

import pytest

from rollback_drill.journal import REDACTED, Journal


def test_step_records_start_end_duration_and_status(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.jsonl")
    with journal.step("phase", "phase-2", budget_s=120) as step:
        step.data["extra"] = 1
    lines = [json.loads(x) for x in (tmp_path / "j.jsonl").read_text().splitlines()]
    assert [ln["phase"] for ln in lines] == ["start", "end"]
    assert lines[1]["status"] == "ok" and lines[1]["extra"] == 1 and lines[1]["budget_s"] == 120
    assert lines[1]["duration_s"] >= 0 and step.status == "ok"


def test_failed_step_records_the_exception_and_reraises() -> None:
    journal = Journal()
    with pytest.raises(RuntimeError), journal.step("phase", "p"):
        raise RuntimeError("boom")
    end = journal.events[-1].as_dict()
    assert end["status"] == "failed" and end["error"] == "RuntimeError: boom"


def test_secrets_never_reach_the_file(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.jsonl")
    journal.redact("s3cret-pw")
    journal.event(
        "step", "login", cmd=["psql", "postgresql://u:s3cret-pw@127.0.0.1/db"], note="s3cret-pw"
    )
    text = (tmp_path / "j.jsonl").read_text()
    assert "s3cret-pw" not in text and REDACTED in text
