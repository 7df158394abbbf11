from __future__ import annotations

import pytest

from rollback_drill.errors import RollbackError
from rollback_drill.rollback import (
    PHASES,
    SEQUENCES,
    budget_s,
    sequence_budget_s,
    success_criterion_s,
    under_success_criterion,
    validate_sequence,
    within_budget,
)
from rollback_drill.rollback.executor import PHASE_RUNNERS


def test_the_plans_budgets() -> None:
    # "Phase 1: Stop Deployment (30 seconds)", "Phase 2 ... - 2 Minutes", "Phase 3 ... - 5
    # Minutes", "Phase 4 ... - 10 Minutes", "Phase 5 ... - 15 Minutes"
    assert {n: p.budget_s for n, p in PHASES.items()} == {
        1: 30.0,
        2: 120.0,
        3: 300.0,
        4: 600.0,
        5: 900.0,
    }
    assert success_criterion_s() == 300.0  # "Rollback completes in < 5 minutes"


def test_goals_are_tighter_than_budgets() -> None:
    for p in PHASES.values():
        assert p.goal_s is None or p.goal_s < p.budget_s
        assert p.title and p.use_if and p.impact


def test_every_phase_has_a_runner() -> None:
    assert set(PHASE_RUNNERS) == set(PHASES)


@pytest.mark.parametrize("seq", SEQUENCES)
def test_accepted_sequences(seq: tuple[int, ...]) -> None:
    assert validate_sequence(list(seq)) == seq
    assert sequence_budget_s(seq) == sum(budget_s(p) for p in seq)


def test_the_plans_combinations_are_accepted() -> None:
    assert {(1, 2), (1, 3), (1, 3, 4), (5,)} <= set(SEQUENCES)


@pytest.mark.parametrize("seq", [(), (2,), (2, 1), (1, 2, 3, 4, 5), (1, 5)])
def test_other_sequences_are_refused_naming_the_accepted(seq: tuple[int, ...]) -> None:
    with pytest.raises(RollbackError, match="accepted 1→2, 1→3"):
        validate_sequence(seq)


def test_unknown_phase_and_budget_check() -> None:
    with pytest.raises(RollbackError, match="no rollback phase 6"):
        budget_s(6)
    assert within_budget(120.0, budget_s(2)) and not within_budget(120.1, budget_s(2))
    # the success criterion is strict: "< 5 minutes"
    assert under_success_criterion(299.9) and not under_success_criterion(300.0)
