"""Running phases in order, each timed against its budget, and the result of a rollback."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from rollback_drill.defects import PlanDefect
from rollback_drill.errors import DrillError
from rollback_drill.rollback.budgets import sequence_budget_s, validate_sequence
from rollback_drill.rollback.context import RollbackContext
from rollback_drill.rollback.phase1 import stop_deployment
from rollback_drill.rollback.phase2 import config_rollback
from rollback_drill.rollback.phase3 import code_rollback
from rollback_drill.rollback.phase4 import database_rollback
from rollback_drill.rollback.phase5 import emergency_restore
from rollback_drill.rollback.steps import PhaseResult, PhaseRun

__all__ = ["PHASE_RUNNERS", "RollbackResult", "run_rollback"]

PHASE_RUNNERS: Final[Mapping[int, Callable[[PhaseRun], None]]] = MappingProxyType(
    {
        1: stop_deployment,
        2: config_rollback,
        3: code_rollback,
        4: database_rollback,
        5: emergency_restore,
    }
)


@dataclass
class RollbackResult:
    sequence: tuple[int, ...]
    started: float  # epoch seconds
    finished: float = 0.0
    phases: list[PhaseResult] = field(default_factory=list)
    defects: list[PlanDefect] = field(default_factory=list)  # observed during this rollback
    error: str | None = None

    @property
    def label(self) -> str:
        return "→".join(map(str, self.sequence))

    @property
    def time_to_rollback_s(self) -> float:
        return sum(p.duration_s for p in self.phases)

    @property
    def budget_s(self) -> float:
        return sequence_budget_s(self.sequence)

    @property
    def ok(self) -> bool:
        return self.error is None and all(p.status == "ok" for p in self.phases)

    def over_budget(self) -> list[PhaseResult]:
        return [p for p in self.phases if p.duration_s > p.budget_s]

    def properties(self) -> dict[str, float | str]:
        """JUnit properties: phase, time_to_rollback_s, budget_s, per phase and per step."""
        props: dict[str, float | str] = {
            "phase": self.label,
            "time_to_rollback_s": round(self.time_to_rollback_s, 2),
            "budget_s": self.budget_s,
        }
        for p in self.phases:
            props[f"phase:{p.phase}_s"] = round(p.duration_s, 2)
            props[f"budget:{p.phase}_s"] = p.budget_s
            for st in p.steps:
                key = f"step:p{p.phase}.{st.name}_s"
                props[key] = round(float(props.get(key, 0.0)) + st.duration_s, 2)
        if self.defects:
            props["plan_defects"] = ",".join(d.id for d in self.defects)
        return props


def run_rollback(ctx: RollbackContext, phases: Iterable[int]) -> RollbackResult:
    """Run ``phases`` (an accepted sequence) in order; each timed, each step recorded.

    The first failing step stops the rollback: its error is raised (after the result so far is
    in the journal) as :class:`~rollback_drill.errors.DrillError`.
    """
    seq = validate_sequence(phases)
    ctx.sequence = seq
    journal = ctx.stack.journal
    result = RollbackResult(seq, time.time())
    known_before = set(ctx.observed)
    with journal.step("rollback", ctx.label, reason=ctx.reason, budget_s=result.budget_s) as step:
        try:
            for number in seq:
                run = PhaseRun(ctx, number)
                result.phases.append(run.result)
                _run_phase(run)
        except DrillError as exc:
            result.error = str(exc)
            raise
        finally:
            result.finished = time.time()
            seen = [d for d in ctx.observed if d not in known_before]
            by_id = {d.id: d for d in ctx.defects.defects}
            result.defects = [by_id[i] for i in dict.fromkeys(seen) if i in by_id]
            step.data.update(
                time_to_rollback_s=round(result.time_to_rollback_s, 2),
                phases={p.phase: round(p.duration_s, 2) for p in result.phases},
                defects=[d.id for d in result.defects],
            )
    _announce_completion(ctx, result)
    return result


def _run_phase(run: PhaseRun) -> None:
    journal = run.stack.journal
    res = run.result
    start = time.monotonic()
    with journal.step("phase", f"phase-{run.phase}", title=res.title, budget_s=res.budget_s) as st:
        try:
            PHASE_RUNNERS[run.phase](run)
            res.status = "ok"
        except BaseException:
            res.status = "failed"
            raise
        finally:
            res.duration_s = time.monotonic() - start
            st.data.update(
                within_budget=res.duration_s <= res.budget_s,
                steps=len(res.steps),
                defects=res.defects,
            )


def _announce_completion(ctx: RollbackContext, result: RollbackResult) -> None:
    if ctx.announcement is None:
        return
    over = result.over_budget()
    outcome = (
        "all phases within budget"
        if not over
        else ("over budget: " + ", ".join(f"phase {p.phase} {p.duration_s:.0f} s" for p in over))
    )
    text = ctx.announcement.completion(result.finished, result.label, outcome)
    try:
        where = ctx.sink.send(ctx.announcement.subject + " - complete", text)
    except DrillError as exc:
        ctx.stack.journal.event("rollback", "announce_completion", error=str(exc))
        return
    ctx.stack.journal.event("rollback", "announce_completion", sent_to=where)
