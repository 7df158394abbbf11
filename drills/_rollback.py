"""The rollback a drill runs after a decision: the phases the product chooses (checked against the
plan's prescription), the executor, then the validation checklist, no data loss and the clock.
"""

from __future__ import annotations

from pathlib import Path

from rollback_drill.announce import FileSink
from rollback_drill.checks.base import CheckResult
from rollback_drill.checks.checklist import run_checklist
from rollback_drill.checks.data import no_acked_write_lost
from rollback_drill.checks.success import rollback_in_time
from rollback_drill.decisions import Decision
from rollback_drill.defects import DefectLog
from rollback_drill.drill import DrillRun
from rollback_drill.errors import DrillError
from rollback_drill.report import DrillSummary, lessons_learned
from rollback_drill.rollback import (
    RollbackContext,
    RollbackResult,
    run_rollback,
)
from rollback_drill.rollback.choose import choose_phases, deployment_state
from rollback_drill.rollback.health import stopped_on_purpose
from rollback_drill.wait import WaitTimeout

from ._detection import sleep_until
from ._verdicts import RecordProperty


def chosen_phases(
    run: DrillRun,
    decision: Decision,
    prescribed: tuple[int, ...],
    record_property: RecordProperty,
) -> tuple[int, ...]:
    """The phases the product chooses for ``decision`` from what the deployment changed
    (``rollback.choose``); the drill fails unless they are the ones the plan prescribes for its
    defect (``prescribed``, written in the drill)."""
    state = deployment_state(run.stack, run.stack.target.releases.previous)
    chosen = choose_phases(decision, state, run.stack.target)
    record_property("deployment_changed", state.describe())
    record_property("phases_chosen", "->".join(map(str, chosen.phases)))
    record_property("phases_reasons", "; ".join(chosen.reasons))
    run.journal.event("rollback", "phases chosen", phases=list(chosen.phases), why=chosen.reasons)
    assert chosen.phases == prescribed, (
        f"the executor's chooser picked {chosen.describe()}; the plan prescribes "
        f"{'->'.join(map(str, prescribed))} for this defect"
    )
    return chosen.phases


def execute_rollback(
    run: DrillRun,
    phases: tuple[int, ...],
    decision: Decision,
    *,
    sink_path: Path,
    defects: DefectLog,
    holder: str,
    record: DrillSummary,
    record_property: RecordProperty,
) -> tuple[RollbackResult, float]:
    """The executor runs ``phases`` for ``decision`` (its announcements into ``sink_path``)
    under the drill's policy (its budgets; status updates at its scaled interval); returns the
    result and when the rollback ended (wall time). A rollback that fails leaves its Lessons
    Learned ("Partial"/"No", the failing phase and step) and its announcements in the report
    before the error goes on."""
    ctx = RollbackContext(
        run.stack,
        reason=decision.message,
        sink=FileSink(sink_path),
        defects=defects,
        backups=run.backups,
        holder=holder,
        policy=run.policy,
    )
    run.mark("rollback start")
    try:
        result = run_rollback(ctx, phases)
    except DrillError as exc:
        run.mark("rollback failed")
        if ctx.result is not None:
            for key, value in ctx.result.properties().items():
                record_property(key, value)
        record.lessons = lessons_learned(decision.message, ctx.result, failure=str(exc))
        if sink_path.exists():
            record.announcement = sink_path.read_text()
        raise
    rolled_back_at = run.mark("rollback end")
    for key, value in result.properties().items():
        record_property(key, value)
    if sink_path.exists():
        record.announcement = sink_path.read_text()
    return result, rolled_back_at


def verify_after_rollback(
    run: DrillRun,
    result: RollbackResult,
    phases: tuple[int, ...],
    rolled_back_at: float,
    issue: str,
    record: DrillSummary,
    record_property: RecordProperty,
) -> list[CheckResult]:
    """The plan's Rollback Validation Checklist, no data loss and the success criterion's clock,
    read under the same load after a rollback; the Lessons Learned filled from them.

    The checklist judges the stack after one (scaled) minute to settle, over one (scaled) minute
    observed -- at least 20 s and 30 s (the policy's ``checklist`` period): on 2 cores the
    replicas Phase 2 starts take 10-20 s to warm, and a P95 read over their first seconds says
    nothing about the rolled-back release (it read 3x baseline once at 6 s); the P95 is judged
    in thirds, each >= 100 CRUD requests. The services the phases stopped on purpose (from the
    commands they ran) may be stopped; every other container must be running and healthy.
    """
    settle_s, observe_s = run.policy.checklist_period_s()
    stopped = stopped_on_purpose(result, run.stack.compose.base)
    record_property("stopped_on_purpose", " ".join(stopped))
    writes = [] if run.load is None else [writes_after_rollback(run, rolled_back_at)]
    since = rolled_back_at + settle_s
    sleep_until(since + observe_s)  # the observation period itself is what is measured
    assert run.baseline is not None
    checks = writes + run_checklist(
        run.stack,
        run.store,
        run.policy,
        run.baseline,
        since=since,
        baseline_window=run.baseline_window(),
        stopped=stopped,
    )
    dsn = run.stack.postgres_dsn()
    checks.append(no_acked_write_lost(dsn, run.ledger, run.stack.target.read_back))
    checks.append(rollback_in_time(result.time_to_rollback_s, run.policy, budget_s=result.budget_s))
    run.mark("checklist done")
    for c in checks:
        record_property(f"check:{c.name}", "pass" if c.passed else f"FAIL {c.measured!r}")
    record.lessons = lessons_learned(issue, result, checks)
    return checks


def writes_after_rollback(run: DrillRun, rolled_back_at: float) -> CheckResult:
    """The load's writes are acknowledged again after the rollback (the policy's count, polled
    for its time) -- a check, not a wait that ends the drill: when they are not, the checklist
    still runs and names the cause (a service left stopped, an unhealthy container)."""
    assert run.load is not None
    need = run.policy.drills.writes_after_rollback
    timeout_s = run.policy.drills.writes_after_rollback_timeout_s
    expected = f">= {need} within {timeout_s:g} s"
    try:
        got = run.load.wait_for_writes(need, after=rolled_back_at, timeout_s=timeout_s)
    except WaitTimeout:
        got = len(run.ledger.acked_after(rolled_back_at))
        return CheckResult("Writes acknowledged after the rollback", False, got, expected)
    return CheckResult("Writes acknowledged after the rollback", True, got, expected)
