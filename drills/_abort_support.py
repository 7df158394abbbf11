"""What the Phase 1 abort, Phase 5 fallback and irreversible-release drills share: the executor
run with the drill's write ledger (the data-loss window in acknowledged writes), its result in
the JUnit properties (and so in the HTML report), and the checks of a fallback."""

from __future__ import annotations

from pathlib import Path

from rollback_drill.announce import FileSink
from rollback_drill.checks.base import CheckResult
from rollback_drill.defects import DefectLog
from rollback_drill.drill import DrillRun
from rollback_drill.report import DrillSummary
from rollback_drill.rollback import RollbackContext, RollbackResult, run_rollback

from ._support import RecordProperty, verify_after_rollback

__all__ = ["fallback_checks", "rollback_with_ledger"]


def rollback_with_ledger(
    run: DrillRun,
    phases: tuple[int, ...],
    reason: str,
    *,
    defects: DefectLog,
    sink_path: Path,
    holder: str,
    record: DrillSummary,
    record_property: RecordProperty,
) -> tuple[RollbackResult, float]:
    """The executor runs ``phases`` (falling back to Phase 5 when one fails); returns the
    result and when the rollback ended (wall time). Every property of the result is recorded."""
    ctx = RollbackContext(
        run.stack,
        reason=reason,
        sink=FileSink(sink_path),
        defects=defects,
        backups=run.backups,
        holder=holder,
        policy=run.policy,
        ledger=run.ledger,
    )
    run.mark("rollback start")
    result = run_rollback(ctx, phases)
    rolled_back_at = run.mark("rollback end", phases=result.label)
    for key, value in result.properties().items():
        record_property(key, value)
    if sink_path.exists():
        record.announcement = sink_path.read_text()
    return result, rolled_back_at


def fallback_checks(result: RollbackResult, failed_phase: int, why: str) -> list[CheckResult]:
    """Phase ``failed_phase`` failed (its error naming ``why``), Phase 5 ran and rolled the
    stack back, and the data-loss window was measured with nothing lost outside it."""
    failure = result.failure
    loss = result.data_loss
    return [
        CheckResult(
            f"Phase {failed_phase} failed and was recorded",
            failure is not None and failure.phase == failed_phase and why in failure.error,
            failure.describe() if failure is not None else "no failure recorded",
            f"phase {failed_phase}: ...{why}...",
        ),
        CheckResult(
            "Executor fell back to Phase 5 (Emergency Fallback)",
            result.fallback and result.rolled_back and result.phases[-1].phase == 5,
            result.label,
            "... → 5, Phase 5 ok",
        ),
        CheckResult(
            "Data-loss window measured (acknowledged writes, none lost outside it)",
            loss is not None and loss.source == "ledger" and loss.lost_outside == 0,
            loss.describe() if loss is not None else "not measured",
            "ledger count; 0 lost outside the window",
        ),
    ]


PLAN_NO_DATA_LOSS = "No data loss (acknowledged writes)"


def verify_after_fallback(
    run: DrillRun,
    result: RollbackResult,
    rolled_back_at: float,
    issue: str,
    record: DrillSummary,
    record_property: RecordProperty,
) -> list[CheckResult]:
    """The checklist, the clock and the Lessons Learned after a rollback that fell back to
    Phase 5 (``verify_after_rollback`` over the phases that ran). The plan's "no data loss"
    cannot hold after Phase 5 -- the window's writes are lost by design (the restore) -- so it
    is recorded as measured (``plan_no_data_loss_after_phase_5``) and left out: the drill holds
    the executor to the window instead (``fallback_checks``: nothing lost outside it)."""
    checks = verify_after_rollback(
        run,
        result,
        tuple(p.phase for p in result.phases),
        rolled_back_at,
        issue,
        record,
        record_property,
    )
    for c in checks:
        if c.name == PLAN_NO_DATA_LOSS:
            record_property("plan_no_data_loss_after_phase_5", c.line())
    return [c for c in checks if c.name != PLAN_NO_DATA_LOSS]
