"""The completion announcement and "Rollback Executed" say how the rollback really ended, through
the executor itself (phases replaced by stand-ins, no Docker): complete; complete through the
Phase 5 emergency fallback (the failed phase, why, the data-loss window); failed, Phase 5 too;
interrupted. A fallback that rolled back is never announced as FAILED or "interrupted"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_rollback_fallback import context, failing, passing

from rollback_drill.announce import SEPARATOR, Announcement
from rollback_drill.errors import RollbackError
from rollback_drill.report import lessons_learned, rollback_executed
from rollback_drill.rollback import RollbackContext, executor, run_rollback
from rollback_drill.rollback.result import Outcome, RollbackResult
from rollback_drill.rollback.steps import PhaseRun


def interrupted(run: PhaseRun) -> None:
    run.action("wait_healthy", "wait for backend-wsgi healthy", lambda: "waiting")
    raise KeyboardInterrupt


def empty_bug(run: PhaseRun) -> None:
    raise ValueError  # a bug without a message: the reason still names it


@pytest.fixture
def phases(monkeypatch: pytest.MonkeyPatch) -> dict[int, Any]:
    runners: dict[int, Any] = {n: passing for n in range(1, 6)}
    monkeypatch.setattr(executor, "PHASE_RUNNERS", runners)
    return runners


def announced(tmp_path: Path) -> RollbackContext:
    ctx = context(tmp_path)
    ctx.announcement = Announcement("error rate > 10 %", 1_800_000_000.0, 300.0, "impact")
    return ctx


def completion(tmp_path: Path) -> tuple[str, str]:
    """The completion message sent (the only message: the stand-ins announce nothing)."""
    [text] = [m for m in (tmp_path / "announce.txt").read_text().split(SEPARATOR) if m]
    subject, _, body = text.partition("\n")
    return subject, body


def test_complete(tmp_path: Path, phases: dict[int, Any]) -> None:
    result = run_rollback(announced(tmp_path), (1, 2))
    subject, body = completion(tmp_path)
    assert result.outcome is Outcome.COMPLETE
    assert subject.endswith("Hybrid Migration - complete")
    assert "phases 1→2)" in body and "- Result: all phases within budget" in body
    assert "Phase 5" not in body and "FAILED" not in body
    assert rollback_executed(result) == "Yes"


def test_fallback_complete(tmp_path: Path, phases: dict[int, Any]) -> None:
    phases[3] = failing
    result = run_rollback(announced(tmp_path), (1, 3, 4))
    subject, body = completion(tmp_path)
    assert result.outcome is Outcome.FALLBACK_COMPLETE
    assert subject.endswith(" - complete via Phase 5 emergency fallback")
    assert "is complete, through the plan's Phase 5\nemergency fallback" in body
    assert "phases 1→3→5)" in body
    assert (
        "- Failed: phase 3 (Full Rollback (Code + Config)), step build_wsgi: "
        "`docker compose build backend-wsgi` failed: docker compose build backend-wsgi: exit 1"
    ) in body
    # no ledger and no PostgreSQL here: the window is said as not measured, with why
    assert "- Data loss (writes after the backup are gone): data-loss window " in body
    assert "not measured (StackError: postgres is not published" in body
    assert "FAILED" not in body and "interrupted" not in body
    assert rollback_executed(result) == "Yes (via Phase 5, after phase 3 failed)"
    lessons = lessons_learned("error_rate", result)
    assert lessons["Rollback Executed"].startswith("Yes (via Phase 5")
    assert "phase 3 (Full Rollback (Code + Config)) failed" in lessons["What Didn't Work"]


def test_fallback_failed(tmp_path: Path, phases: dict[int, Any]) -> None:
    phases[3] = failing
    phases[5] = empty_bug
    ctx = announced(tmp_path)
    with pytest.raises(ValueError):
        run_rollback(ctx, (1, 3))
    result = ctx.result
    assert isinstance(result, RollbackResult) and result.outcome is Outcome.FALLBACK_FAILED
    subject, body = completion(tmp_path)
    assert subject.endswith(" - FAILED")
    assert "- Rolled back: phase 1 (Stop Deployment" in body
    assert (
        "- Failed: phase 3 (Full Rollback (Code + Config)), step build_wsgi: "
        "`docker compose build backend-wsgi` failed: docker compose build backend-wsgi: exit 1; "
        "then the Phase 5 emergency fallback failed: ValueError"
    ) in body
    assert "interrupted" not in body
    assert rollback_executed(result) == (
        "Partial: phases 1 done; phase 3 (Full Rollback (Code + Config)) failed, "
        "phase 5 (Emergency Fallback) failed"
    )


def test_failed_without_fallback(tmp_path: Path, phases: dict[int, Any]) -> None:
    phases[2] = failing
    ctx = announced(tmp_path)
    ctx.fallback = False
    with pytest.raises(RollbackError):
        run_rollback(ctx, (1, 2))
    assert ctx.result is not None and ctx.result.outcome is Outcome.FAILED
    subject, body = completion(tmp_path)
    assert subject.endswith(" - FAILED") and "Phase 5" not in body
    assert "- Failed: phase 2 (Quick Rollback (Configuration Only)), step build_wsgi" in body


def test_interrupted(tmp_path: Path, phases: dict[int, Any]) -> None:
    phases[3] = interrupted
    ctx = announced(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_rollback(ctx, (1, 3, 4))
    result = ctx.result
    assert result is not None and result.outcome is Outcome.INTERRUPTED
    assert [p.status for p in result.phases] == ["ok", "interrupted"]  # no fallback
    subject, body = completion(tmp_path)
    assert subject.endswith(" - INTERRUPTED")
    assert "- Rolled back: phase 1 (Stop Deployment" in body
    assert "- Interrupted by: interrupted by KeyboardInterrupt" in body
    assert rollback_executed(result) == (
        "Partial: phases 1 done; phase 3 (Full Rollback (Code + Config)) interrupted "
        "(interrupted by KeyboardInterrupt)"
    )
