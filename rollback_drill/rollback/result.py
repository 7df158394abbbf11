"""The result of a rollback as it runs: each step, each phase, the whole sequence.

The executor fills a :class:`RollbackResult` phase by phase (``RollbackContext.result`` holds
it, also when the rollback fails); reports, the checklist's "all containers healthy" and the
success criterion read it. It sits below the context, the phases and the executor, which all
hand it on, and imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from rollback_drill.defects import PlanDefect
from rollback_drill.policy import Policy
from rollback_drill.rollback.budgets import sequence_budget_s, within_budget
from rollback_drill.rollback.fallback import DataLossWindow, PhaseFailure

__all__ = ["Outcome", "PhaseResult", "RollbackResult", "StepResult"]


@dataclass(frozen=True)
class StepResult:
    phase: int
    name: str
    cmd: str
    returncode: int
    duration_s: float
    tail: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


@dataclass
class PhaseResult:
    phase: int
    title: str
    budget_s: float
    started: float  # epoch seconds
    duration_s: float = 0.0
    steps: list[StepResult] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)  # ids observed in this phase
    status: str = "running"

    @property
    def within_budget(self) -> bool:
        return self.status == "ok" and within_budget(self.duration_s, self.budget_s)


class Outcome(StrEnum):
    """How a rollback ended, as the announcement and Lessons Learned say it."""

    COMPLETE = "complete"  # the sequence ran, every phase ok
    FALLBACK_COMPLETE = "complete via Phase 5"  # a phase failed; Phase 5 then rolled back
    FALLBACK_FAILED = "failed, Phase 5 too"  # a phase failed, and the Phase 5 fallback failed
    FAILED = "failed"  # a phase failed, no fallback (not allowed, or Phase 5 itself)
    INTERRUPTED = "interrupted"  # stopped from outside (Ctrl-C, the drill's time limit)
    NOT_RUN = "not run"  # no phase started


@dataclass
class RollbackResult:
    sequence: tuple[int, ...]
    started: float  # epoch seconds
    finished: float = 0.0
    phases: list[PhaseResult] = field(default_factory=list)
    defects: list[PlanDefect] = field(default_factory=list)  # observed during this rollback
    error: str | None = None
    policy: Policy | None = None  # the budgets' source (None: the shipped policy)
    failure: PhaseFailure | None = None  # the phase of the sequence that failed
    fallback: bool = False  # Phase 5 ran because of ``failure``
    data_loss: DataLossWindow | None = None  # what Phase 5 lost (when Phase 5 ran)
    stopped: list[str] = field(default_factory=list)  # what Phase 1 stopped or took over
    interrupted: bool = False  # stopped by an interruption, not by a failing step

    @property
    def outcome(self) -> Outcome:
        if self.interrupted:
            return Outcome.INTERRUPTED
        if not self.phases:
            return Outcome.NOT_RUN if self.error is None else Outcome.FAILED
        if self.rolled_back:
            return Outcome.FALLBACK_COMPLETE if self.fallback else Outcome.COMPLETE
        return Outcome.FALLBACK_FAILED if self.fallback else Outcome.FAILED

    @property
    def label(self) -> str:
        """The phases as run: the sequence, or (after a fallback) the phases up to the failed
        one and Phase 5."""
        ran = [p.phase for p in self.phases] if self.fallback else self.sequence
        return "→".join(map(str, ran))

    @property
    def rolled_back(self) -> bool:
        """The stack was rolled back: the sequence completed, or Phase 5 after a failure."""
        return self.error is None and bool(self.phases) and self.phases[-1].status == "ok"

    @property
    def time_to_rollback_s(self) -> float:
        return sum(p.duration_s for p in self.phases)

    @property
    def budget_s(self) -> float:
        ran = [p.phase for p in self.phases] if self.fallback else self.sequence
        return sequence_budget_s(ran, self.policy)

    @property
    def ok(self) -> bool:
        return self.error is None and all(p.status == "ok" for p in self.phases)

    def over_budget(self) -> list[PhaseResult]:
        return [p for p in self.phases if not within_budget(p.duration_s, p.budget_s)]

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
        if self.failure is not None:
            props["failed_phase"] = self.failure.phase
            props["failure"] = self.failure.describe()
            props["fallback"] = "phase 5" if self.fallback else "none"
        if self.data_loss is not None:
            props.update(self.data_loss.properties())
        if self.stopped:
            props["phase1_stopped"] = " | ".join(self.stopped)
        return props
