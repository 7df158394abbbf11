"""Running phases in order, each timed against its budget, and the result of a rollback.

When a phase of a sequence fails, the executor falls back to Phase 5 -- the plan's "Emergency
Fallback (If Above Fails)" -- and the result names the failed phase and step, the fallback, and
the data-loss window Phase 5 costs (:mod:`rollback_drill.rollback.fallback`). No fallback when
the lock is held by someone else (``LockHeld``: another rollback or a deployment that would not
stop is changing the stack), when the failing phase is Phase 5 itself, or when the context
says so (``RollbackContext.fallback``); then the error is raised as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Final

from rollback_drill.announce import StatusUpdates
from rollback_drill.errors import DrillError, LockHeld
from rollback_drill.rollback.budgets import validate_sequence, within_budget
from rollback_drill.rollback.context import RollbackContext
from rollback_drill.rollback.fallback import PhaseFailure, measure_loss, stored_before
from rollback_drill.rollback.phase1 import stop_deployment
from rollback_drill.rollback.phase2 import config_rollback
from rollback_drill.rollback.phase3 import code_rollback
from rollback_drill.rollback.phase4 import database_rollback
from rollback_drill.rollback.phase5 import emergency_restore
from rollback_drill.rollback.result import Outcome, RollbackResult
from rollback_drill.rollback.steps import PhaseRun

__all__ = ["PHASE_RUNNERS", "RollbackResult", "run_rollback"]  # RollbackResult: from ``result``

PHASE_RUNNERS: Final[Mapping[int, Callable[[PhaseRun], None]]] = MappingProxyType(
    {
        1: stop_deployment,
        2: config_rollback,
        3: code_rollback,
        4: database_rollback,
        5: emergency_restore,
    }
)


def run_rollback(ctx: RollbackContext, phases: Iterable[int]) -> RollbackResult:
    """Run ``phases`` (an accepted sequence) in order; each timed, each step recorded.

    The first failing step stops the sequence; the executor then falls back to Phase 5 (see
    the module docstring) and returns the result, which names the failure. Where it does not
    fall back, or Phase 5 fails too, the error is raised (after the result so far is in the
    journal) as :class:`~rollback_drill.errors.DrillError`.
    """
    seq = validate_sequence(phases)
    ctx.sequence = seq
    journal = ctx.stack.journal
    result = ctx.result = RollbackResult(seq, time.time(), policy=ctx.policy)
    known_before = set(ctx.observed)
    updates = _status_updates(ctx, result)
    with (
        updates,
        journal.step("rollback", ctx.label, reason=ctx.reason, budget_s=result.budget_s) as step,
    ):
        try:
            try:
                for number in seq:
                    run = PhaseRun(ctx, number)
                    result.phases.append(run.result)
                    _run_phase(run)
            except LockHeld:
                raise
            except Exception as exc:
                if not ctx.fallback or 5 in seq:
                    raise
                _fall_back(ctx, result, exc)
        except BaseException as exc:  # the result says what ended it, whatever it was
            result.error = _why(exc)
            result.interrupted = not isinstance(exc, Exception)
            raise
        finally:
            result.finished = time.time()
            result.stopped = list(ctx.stopped)
            seen = [d for d in ctx.observed if d not in known_before]
            by_id = {d.id: d for d in ctx.defects.defects}
            result.defects = [by_id[i] for i in dict.fromkeys(seen) if i in by_id]
            step.data.update(
                time_to_rollback_s=round(result.time_to_rollback_s, 2),
                phases={p.phase: round(p.duration_s, 2) for p in result.phases},
                defects=[d.id for d in result.defects],
            )
            updates.stop()
            _announce_completion(ctx, result)
    return result


def _fall_back(ctx: RollbackContext, result: RollbackResult, exc: Exception) -> None:
    """Phase 5 after ``exc`` failed the last phase of ``result``; the data-loss window."""
    failed = result.phases[-1]
    step = next((st.name for st in reversed(failed.steps) if not st.ok), "")
    result.failure = PhaseFailure(failed.phase, failed.title, step, _why(exc))
    result.fallback = True
    journal = ctx.stack.journal
    journal.event(
        "rollback",
        "fallback to phase 5",
        failed_phase=failed.phase,
        step=step,
        why=result.failure.error,
    )
    backups = ctx.backup_set()
    # without a ledger the loss is counted in the database: the rows before Phase 5
    before = stored_before(ctx.stack) if ctx.ledger is None else None
    run = PhaseRun(ctx, 5)
    result.phases.append(run.result)
    _run_phase(run)
    result.data_loss = measure_loss(
        ctx.stack,
        since=backups.dump_started,
        until=time.time(),
        before=before,
        ledger=ctx.ledger,
    )
    journal.event("rollback", "data-loss window", **result.data_loss.properties())


def _why(exc: BaseException) -> str:
    """One line: a drill error's own message; any other exception (a bug, an interruption)
    with its type, so an empty message never reads as no reason."""
    first = next(iter(str(exc).splitlines()), "").strip()
    if isinstance(exc, DrillError) and first:
        return first
    what = type(exc).__name__
    if not isinstance(exc, Exception):
        what = f"interrupted by {what}"
    return f"{what}: {first}" if first else what


def _run_phase(run: PhaseRun) -> None:
    journal = run.stack.journal
    res = run.result
    start = time.monotonic()
    with journal.step("phase", f"phase-{run.phase}", title=res.title, budget_s=res.budget_s) as st:
        try:
            PHASE_RUNNERS[run.phase](run)
            res.status = "ok"
        except BaseException as exc:
            res.status = "failed" if isinstance(exc, Exception) else "interrupted"
            raise
        finally:
            res.duration_s = time.monotonic() - start
            st.data.update(
                within_budget=within_budget(res.duration_s, res.budget_s),
                steps=len(res.steps),
                defects=res.defects,
            )


def _status_updates(ctx: RollbackContext, result: RollbackResult) -> StatusUpdates:
    """The announcement's status updates while ``result``'s phases run (see ``announce``)."""
    journal = ctx.stack.journal

    def state() -> str:
        running = [p for p in result.phases if p.status == "running"]
        done = [f"phase {p.phase} ({p.title}) done" for p in result.phases if p.status == "ok"]
        now = [f"phase {p.phase} ({p.title}) running" for p in running]
        return "; ".join(done + now) or "starting"

    return StatusUpdates(
        ctx.sink,
        lambda: ctx.announcement,
        state,
        on_sent=lambda n, where: journal.event(
            "rollback", "status_update", number=n, sent_to=where
        ),
        on_error=lambda error: journal.event("rollback", "status_update", error=error),
    )


def _announce_completion(ctx: RollbackContext, result: RollbackResult) -> None:
    """The completion message as the rollback ended (:class:`Outcome`): complete; complete
    through the Phase 5 emergency fallback, naming the phase that failed, why, and the
    data-loss window; failed (Phase 5 too, or without a fallback), with what was rolled back
    by then; interrupted."""
    ann = ctx.announcement
    if ann is None:
        ctx.stack.journal.event(
            "rollback", "announce_completion", sent_to=None, why="not announced"
        )
        return
    outcome = result.outcome
    why = result.error or "unknown"
    done = ", ".join(f"phase {p.phase} ({p.title})" for p in result.phases if p.status == "ok")
    if outcome is Outcome.COMPLETE:
        text = ann.completion(result.finished, result.label, _budget_line(result))
    elif outcome is Outcome.FALLBACK_COMPLETE:
        assert result.failure is not None  # a fallback is always after a failure
        loss = result.data_loss.describe() if result.data_loss else "not measured"
        text = ann.fallback_completion(
            result.finished, result.label, result.failure.describe(), loss, _budget_line(result)
        )
    elif outcome is Outcome.INTERRUPTED:
        text = ann.interruption(result.finished, result.label, done or "nothing", why)
    else:
        if outcome is Outcome.FALLBACK_FAILED and result.failure is not None:
            why = f"{result.failure.describe()}; then the Phase 5 emergency fallback failed: {why}"
        text = ann.failure(result.finished, result.label, done or "nothing", why)
    subject = text.splitlines()[0].removeprefix("Subject: ")
    try:
        where = ctx.sink.send(subject, text)
    except DrillError as exc:
        ctx.stack.journal.event("rollback", "announce_completion", error=str(exc))
        return
    ctx.stack.journal.event(
        "rollback",
        "announce_completion",
        sent_to=where,
        complete=result.rolled_back,
        outcome=outcome.value,
    )


def _budget_line(result: RollbackResult) -> str:
    over = result.over_budget()
    if not over:
        return "all phases within budget"
    return "over budget: " + ", ".join(f"phase {p.phase} {p.duration_s:.0f} s" for p in over)
