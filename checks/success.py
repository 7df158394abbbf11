"""The plan's "Testing the Rollback Plan" Success Criteria and the phases' budgets, as checks.

    - Rollback completes in < 5 minutes          - All services return to healthy state
    - No data loss                                (checks.data, checks.checklist)

The numbers are the policy's (``rollback`` section); the rules are the executor's own
(:func:`~rollback_drill.rollback.budgets.within_budget`,
:func:`~rollback_drill.rollback.budgets.under_success_criterion`), so a drill, the executor's
journal and the announcement never disagree on what "within budget" means.
"""

from __future__ import annotations

from rollback_drill.checks.base import CheckResult
from rollback_drill.policy import Policy
from rollback_drill.rollback.budgets import under_success_criterion, within_budget
from rollback_drill.rollback.executor import RollbackResult

__all__ = ["phases_within_budget", "rollback_in_time"]


def phases_within_budget(result: RollbackResult) -> list[CheckResult]:
    """One check per phase run: finished, and within the plan's budget."""
    return [
        CheckResult(
            f"Phase {p.phase} ({p.title}) within the plan's budget",
            p.status == "ok" and within_budget(p.duration_s, p.budget_s),
            round(p.duration_s, 2),
            f"<= {p.budget_s:.0f} s",
            "" if p.status == "ok" else f"phase {p.status}",
        )
        for p in result.phases
    ]


def rollback_in_time(
    seconds: float, policy: Policy, *, budget_s: float | None = None, what: str = ""
) -> CheckResult:
    """ "Rollback completes in < 5 minutes" (the policy's success criterion, strict) and, when
    given, within the phases' budget."""
    limit = policy.rollback.success_criterion_s
    ok = under_success_criterion(seconds, policy)
    expected = f"< {limit:.0f} s"
    if budget_s is not None:
        ok = ok and within_budget(seconds, budget_s)
        expected += f" and <= phases' budget {budget_s:.0f} s"
    minutes = limit / 60
    return CheckResult(
        f"Rollback completes in < {minutes:g} minutes",
        ok,
        round(seconds, 2),
        expected,
        what,
    )
