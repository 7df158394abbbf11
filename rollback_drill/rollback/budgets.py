"""The plan's rollback phases: title, when to use, expected impact -- and the one budget rule.

The numbers (each phase's budget, the suite's goal, the success criterion) live in the policy
file (``policy.yaml``, section ``rollback``) next to the plan's words; this module keeps the
words of each phase and reads the numbers from a :class:`~rollback_drill.policy.Policy`: the
one a rollback runs under (``RollbackContext.policy``), or the shipped one when none is given.
``budget_s`` is the plan's own promise ("Phase 2 ... 2 Minutes"); ``goal_s`` is this suite's
goal on a warm machine (issue 5), reported but not asserted.

:func:`within_budget` is the one budget rule (at most the budget), used by the executor, the
phase results, the drills' checks and the success criterion alike.
``SEQUENCES`` are the phase orders the executor accepts: the plan's 1→2, 1→3, 1→3→4 and 5, plus
1→4→3 (migrations rolled back with the new code still in place, then the code).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from rollback_drill.errors import RollbackError
from rollback_drill.policy import Policy, default_policy


@dataclass(frozen=True)
class PhaseSpec:
    number: int
    title: str  # the plan's heading
    budget_s: float  # the plan's budget (from the policy)
    goal_s: float | None  # the suite's goal on a warm machine (not asserted; from the policy)
    use_if: str  # the plan's "Use if"
    impact: str  # user impact while it runs, for the announcement


_WORDS: Final[Mapping[int, tuple[str, str, str]]] = {
    1: (
        "Stop Deployment",
        "always, first",
        "streaming and WebSocket endpoints fail while ASGI is stopped",
    ),
    2: (
        "Quick Rollback (Configuration Only)",
        "No database migrations were run, only container/config changes",
        "streaming falls back to WSGI, WebSockets are unavailable; "
        "CRUD/auth/admin endpoints work normally",
    ),
    3: (
        "Full Rollback (Code + Config)",
        "Code changes need to be reverted",
        "requests may fail for a few seconds while backend-wsgi is recreated; "
        "WebSockets are unavailable afterwards",
    ),
    4: (
        "Database Rollback",
        "Database migrations were applied and need rollback",
        "requests may fail for a few seconds while backend-wsgi restarts",
    ),
    5: (
        "Emergency Fallback",
        "All other rollback attempts fail",
        "full outage while the stack is rebuilt; data written since the "
        "pre-deployment backup is lost",
    ),
}

SEQUENCES: Final[tuple[tuple[int, ...], ...]] = ((1, 2), (1, 3), (1, 3, 4), (1, 4, 3), (5,))


def spec(phase: int, policy: Policy | None = None) -> PhaseSpec:
    """Phase ``phase`` with its budget and goal from ``policy`` (default: the shipped one)."""
    try:
        title, use_if, impact = _WORDS[phase]
    except KeyError:
        raise RollbackError(f"no rollback phase {phase} (the plan has phases 1-5)") from None
    budget = (policy or default_policy()).rollback.phase(phase)
    return PhaseSpec(phase, title, budget.budget_s, budget.goal_s, use_if, impact)


def phases(policy: Policy | None = None) -> dict[int, PhaseSpec]:
    """Every phase, in order, with the policy's numbers."""
    return {n: spec(n, policy) for n in sorted(_WORDS)}


class _ShippedPhases(Mapping[int, PhaseSpec]):
    """The phases under the shipped policy, read when asked (for reports and ``watch``)."""

    def __getitem__(self, phase: int) -> PhaseSpec:
        if phase not in _WORDS:
            raise KeyError(phase)
        return spec(phase)

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(_WORDS))

    def __len__(self) -> int:
        return len(_WORDS)


PHASES: Final[Mapping[int, PhaseSpec]] = _ShippedPhases()


def budget_s(phase: int, policy: Policy | None = None) -> float:
    return spec(phase, policy).budget_s


def success_criterion_s(policy: Policy | None = None) -> float:
    """The plan's "Rollback completes in < 5 minutes", in seconds (strict: less than)."""
    return (policy or default_policy()).rollback.success_criterion_s


def validate_sequence(seq_in: Iterable[int]) -> tuple[int, ...]:
    """The sequence as a tuple, or :class:`RollbackError` naming the accepted ones."""
    seq = tuple(seq_in)
    if seq not in SEQUENCES:
        accepted = ", ".join("→".join(map(str, s)) for s in SEQUENCES)
        raise RollbackError(f"phases {'→'.join(map(str, seq)) or '(none)'}: accepted {accepted}")
    return seq


def sequence_budget_s(seq: Iterable[int], policy: Policy | None = None) -> float:
    """The budget of a sequence: the sum of its phases' budgets."""
    return sum(budget_s(p, policy) for p in seq)


def within_budget(duration_s: float, budget: float) -> bool:
    """The one budget rule: a duration is within its budget when it is at most the budget."""
    return duration_s <= budget


def under_success_criterion(duration_s: float, policy: Policy | None = None) -> bool:
    """The success criterion's rule: strictly less than ("< 5 minutes")."""
    return duration_s < success_criterion_s(policy)
