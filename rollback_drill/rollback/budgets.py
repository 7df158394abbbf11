"""The plan's rollback phases as data: title, time budget, when to use, expected impact.

The one place the budgets live. ``budget_s`` is the plan's own promise ("Phase 2 ... 2 Minutes");
``goal_s`` is this suite's goal on a warm machine (issue 5), reported but not asserted.
``SEQUENCES`` are the phase orders the executor accepts: the plan's 1→2, 1→3, 1→3→4 and 5, plus
1→4→3 (migrations rolled back with the new code still in place, then the code).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from rollback_drill.errors import RollbackError


@dataclass(frozen=True)
class PhaseSpec:
    number: int
    title: str  # the plan's heading
    budget_s: float  # the plan's budget
    goal_s: float | None  # the suite's goal on a warm machine (not asserted)
    use_if: str  # the plan's "Use if"
    impact: str  # user impact while it runs, for the announcement


PHASES: Final[Mapping[int, PhaseSpec]] = MappingProxyType(
    {
        1: PhaseSpec(
            1,
            "Stop Deployment",
            30.0,
            None,
            "always, first",
            "streaming and WebSocket endpoints fail while ASGI is stopped",
        ),
        2: PhaseSpec(
            2,
            "Quick Rollback (Configuration Only)",
            120.0,
            20.0,
            "No database migrations were run, only container/config changes",
            "streaming falls back to WSGI, WebSockets are unavailable; "
            "CRUD/auth/admin endpoints work normally",
        ),
        3: PhaseSpec(
            3,
            "Full Rollback (Code + Config)",
            300.0,
            60.0,
            "Code changes need to be reverted",
            "requests may fail for a few seconds while backend-wsgi is recreated; "
            "WebSockets are unavailable afterwards",
        ),
        4: PhaseSpec(
            4,
            "Database Rollback",
            600.0,
            30.0,
            "Database migrations were applied and need rollback",
            "requests may fail for a few seconds while backend-wsgi restarts",
        ),
        5: PhaseSpec(
            5,
            "Emergency Fallback",
            900.0,
            120.0,
            "All other rollback attempts fail",
            "full outage while the stack is rebuilt; data written since the "
            "pre-deployment backup is lost",
        ),
    }
)

SEQUENCES: Final[tuple[tuple[int, ...], ...]] = ((1, 2), (1, 3), (1, 3, 4), (1, 4, 3), (5,))

SUCCESS_CRITERION_S: Final = 300.0
"""The plan's "Testing the Rollback Plan" success criterion: rollback completes in < 5 minutes."""


def budget_s(phase: int) -> float:
    return spec(phase).budget_s


def spec(phase: int) -> PhaseSpec:
    try:
        return PHASES[phase]
    except KeyError:
        raise RollbackError(f"no rollback phase {phase} (the plan has phases 1-5)") from None


def validate_sequence(phases: Iterable[int]) -> tuple[int, ...]:
    """The sequence as a tuple, or :class:`RollbackError` naming the accepted ones."""
    seq = tuple(phases)
    if seq not in SEQUENCES:
        accepted = ", ".join("→".join(map(str, s)) for s in SEQUENCES)
        raise RollbackError(f"phases {'→'.join(map(str, seq)) or '(none)'}: accepted {accepted}")
    return seq


def sequence_budget_s(phases: Iterable[int]) -> float:
    """The budget of a sequence: the sum of its phases' budgets."""
    return sum(budget_s(p) for p in phases)


def within_budget(phase: int, duration_s: float) -> bool:
    return duration_s <= budget_s(phase)
