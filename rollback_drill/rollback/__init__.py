"""The rollback executor: the plan's phases 1-5 run for real on the stack, timed, recorded.

=================  ===========================================================================
``budgets``        the phases: titles, budgets (from the policy), the one budget rule
``choose``         which phases a decision calls for: the plan's "Use if" lines as rules
``context``        :class:`RollbackContext`: what a rollback hands on from phase to phase
``steps``          :class:`PhaseRun`: every step recorded (command, exit, duration, tail)
``phase1-5``       one module per phase of the plan's Rollback Procedure
``nginx``          restoring nginx's config with ``nginx -t`` before it is loaded
``health``         the plan's smoke test and full health check; one "containers healthy" rule
``data_restored``  Phase 4's data check: what the rollback re-created or dropped vs the backup
``result``         :class:`RollbackResult`, :class:`PhaseResult`, :class:`StepResult`
``executor``       :func:`run_rollback`: the phases in order, Phase 5 when one fails
``fallback``       Phase 5 as the fallback: the phase and step that failed, the data it loses
``measure``        medians of phase durations over JUnit reports
=================  ===========================================================================

Usage::

    ctx = RollbackContext(stack, reason="error rate > 10 %", sink=FileSink(path),
                          defects=DefectLog(journal))
    result = run_rollback(ctx, (1, 3, 4))
    result.time_to_rollback_s, result.over_budget(), result.defects
"""

from __future__ import annotations

from rollback_drill.rollback.budgets import (
    PHASES,
    SEQUENCES,
    PhaseSpec,
    budget_s,
    phases,
    sequence_budget_s,
    success_criterion_s,
    under_success_criterion,
    validate_sequence,
    within_budget,
)
from rollback_drill.rollback.context import RollbackContext
from rollback_drill.rollback.executor import run_rollback
from rollback_drill.rollback.result import PhaseResult, RollbackResult, StepResult

__all__ = [
    "PHASES",
    "SEQUENCES",
    "PhaseResult",
    "PhaseSpec",
    "RollbackContext",
    "RollbackResult",
    "StepResult",
    "budget_s",
    "phases",
    "run_rollback",
    "sequence_budget_s",
    "success_criterion_s",
    "under_success_criterion",
    "validate_sequence",
    "within_budget",
]
