"""The phase chooser: the plan's "Use if" lines as a function of the decision and of what the
deployment changed; the commands an operator types for each phase on a target."""

from __future__ import annotations

import pytest
from paths import REFERENCE_TARGET

from rollback_drill.decisions import Decision, DecisionKind
from rollback_drill.metrics import Metric, Scope
from rollback_drill.policy import Action, Comparison, Severity
from rollback_drill.rollback.choose import (
    DeploymentState,
    choose_phases,
    classify_changes,
    phase_commands,
)
from rollback_drill.target import load_target

CODE = DeploymentState(code=True, config=True)
CONFIG = DeploymentState(code=False, config=True)


def decision(trigger: str, scope: Scope) -> Decision:
    return Decision(
        0.0, DecisionKind.ROLLBACK, trigger, Metric.ERROR_RATE, scope, 0.5, 100,
        Comparison.GT, 0.1, None, None, Severity.CRITICAL, Action.IMMEDIATE_ROLLBACK,
        None, 60.0, 1.0, f"{trigger} fired",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("trigger", "scope", "state", "phases"),
    [
        ("data_corruption", Scope.everywhere(), CODE, (5,)),
        ("asgi_restarts", Scope.service("asgi"), CODE, (1, 2)),
        ("asgi_restarts", Scope.service("backend-asgi"), CODE, (1, 2)),
        ("websocket_disconnects", Scope.category("websocket"), CODE, (1, 2)),
        ("performance_degradation", Scope.category("streaming"), CODE, (1, 2)),
        ("error_rate", Scope.category("crud"), CODE, (1, 3)),
        ("service_unavailable", Scope.everywhere(), CODE, (1, 3)),
        ("error_rate", Scope.category("crud"), CONFIG, (1, 2)),
    ],
)
def test_the_plans_use_if_lines(
    trigger: str, scope: Scope, state: DeploymentState, phases: tuple[int, ...]
) -> None:
    target = load_target(REFERENCE_TARGET)
    assert choose_phases(decision(trigger, scope), state, target).phases == phases


def test_phase_4_only_when_the_previous_code_cannot_run_on_the_schema() -> None:
    crud = decision("error_rate", Scope.category("crud"))
    applied = ("ai_model.0011_aimodel_supports_streaming",)
    unknown = DeploymentState(migrations=applied)
    proved = DeploymentState(migrations=applied, previous_runs_on_schema=True)
    blocked = DeploymentState(migrations=applied, previous_runs_on_schema=False)
    assert choose_phases(crud, unknown).phases == (1, 3)
    assert "not proven" in choose_phases(crud, unknown).describe()
    assert choose_phases(crud, proved).phases == (1, 3)
    # Phase 3 smoke-tests the previous code, which fails on this schema: Phase 4 goes first
    assert choose_phases(crud, blocked).phases == (1, 4, 3)
    # an ASGI-side defect cannot be routed around when the old code cannot read the schema
    ws = decision("websocket_disconnects", Scope.category("websocket"))
    assert choose_phases(ws, blocked).phases == (1, 4, 3)


def test_what_a_release_changed_is_read_from_its_files() -> None:
    target = load_target(REFERENCE_TARGET)
    assert classify_changes(target, ["nginx/nginx.conf"]) == (False, True)
    assert classify_changes(target, ["app/RELEASE"]) == (False, False)
    assert classify_changes(target, ["app/ai_model/models.py", "nginx/nginx.conf"]) == (True, True)


def test_the_first_phases_commands_name_the_targets_services() -> None:
    target = load_target(REFERENCE_TARGET)
    first = phase_commands(1, target, "rbd-x")
    assert first[0] == "docker compose -p rbd-x stop backend-asgi"
    assert "touch /tmp/deployment.lock" in first
    assert any("migrate ai_model 0010" in c for c in phase_commands(4, target, "rbd-x"))


def test_migrations_past_the_rollback_targets_are_read_from_psqls_rows() -> None:
    from rollback_drill.rollback.choose import migrations_query, past_rollback_targets

    target = load_target(REFERENCE_TARGET)
    assert "FROM django_migrations WHERE app IN ('ai_model', 'chat_session')" in (
        migrations_query(target)
    )
    rows = "ai_model 0010_x\nai_model 0011_aimodel_supports_streaming\nauth 0012_y\n"
    assert past_rollback_targets(target, rows) == [("ai_model", "0011_aimodel_supports_streaming")]
