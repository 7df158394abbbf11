"""Every number from the policy (issue 17 item 3): the rollback phases' budgets and the success
criterion, the checklist's limits, the drills' detection budgets and aimed levels are read from
the loaded policy -- a threshold, budget or limit edited in a copy of the policy moves what the
drills aim at, how long they wait, what the checklist accepts and what the executor promises.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from rollback_drill.announce import Announcement
from rollback_drill.checks.checklist import error_rate
from rollback_drill.checks.success import phases_within_budget, rollback_in_time
from rollback_drill.drills.test_infrastructure import memory_over, restarts_over, window_budget
from rollback_drill.errors import PolicyError
from rollback_drill.policy import DEFAULT_POLICY_PATH, Policy, load_policy
from rollback_drill.records import Outcome, RecordStore, RequestRecord
from rollback_drill.rollback.budgets import sequence_budget_s, spec, under_success_criterion
from rollback_drill.rollback.executor import RollbackResult
from rollback_drill.rollback.steps import PhaseResult

T0 = 1_800_000_000.0


def _data() -> dict[str, Any]:
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _rule(data: dict[str, Any], rule_id: str) -> dict[str, Any]:
    for rule in (*data["triggers"], *data.get("matrix", [])):
        if rule["id"] == rule_id:
            return rule  # type: ignore[no-any-return]
    raise KeyError(rule_id)


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def edited(tmp_path: Path) -> Policy:
    """A copy of the shipped policy with thresholds, budgets and limits changed."""
    data = _data()
    _rule(data, "memory_leak")["condition"]["threshold"] = 0.90
    _rule(data, "redis_connection_failures")["condition"]["threshold"] = 20
    for rid in ("wsgi_p95_latency", "matrix_p95_rollback"):
        _rule(data, rid)["condition"]["threshold"] = 3.0
    for rid in ("asgi_restarts", "matrix_container_restarts"):
        _rule(data, rid)["condition"]["threshold"] = 8
        _rule(data, rid)["window_s"] = 300
    data["rollback"]["phases"][1]["budget_s"] = 60  # Phase 2: 2 minutes -> 1
    data["rollback"]["success_criterion_s"] = 240
    data["rollback"]["status_update_interval_s"] = 120
    data["checklist"]["max_error_rate"] = 0.02
    data["checklist"]["settle_s"] = 90
    data["drills"]["detect_slack_s"] = 4
    data["drills"]["quiet_slack_s"] = 9
    data["drills"]["decision_wait_s"] = 900
    data["drills"]["slowed_share"] = 0.10
    return load_policy(_write(tmp_path, data))


def test_the_shipped_numbers_are_the_plans() -> None:
    p = load_policy()
    assert [spec(n).budget_s for n in range(1, 6)] == [30, 120, 300, 600, 900]
    assert p.rollback.success_criterion_s == 300  # "Rollback completes in < 5 minutes"
    assert p.rollback.status_update_interval_s == 300  # "Status updates: Every 5 minutes"
    assert p.checklist.max_error_rate == 0.01  # "Error rate < 1%"
    levels = {lv.id: round(p.level(lv.id), 6) for lv in p.drills.levels}
    assert levels["error_rate_above"] == 0.12 and levels["error_rate_evaluate_band"] == 0.08
    assert levels["error_rate_monitor_band"] == 0.03 and levels["p95_evaluate_band"] == 1.6
    assert levels["memory_below"] == 0.93 and levels["memory_leak_trigger"] == 0.965
    assert levels["user_complaints_at"] == 10 and levels["user_complaints_trigger"] == 11


def test_drills_levels_and_budgets_move_with_the_policy(edited: Policy) -> None:
    shipped = load_policy()
    # levels "just below" / "just above" follow the thresholds
    assert shipped.level("memory_below") == pytest.approx(0.93)
    assert edited.level("memory_below") == pytest.approx(0.88)
    assert memory_over(shipped) == pytest.approx(0.965)  # test_infrastructure's aim
    assert memory_over(edited) == pytest.approx(0.93)  # 30 % of the room past 90 %
    assert edited.level("redis_failures_below") == pytest.approx(14)  # 0.7 x 20
    assert edited.level("p95_above_rollback") == pytest.approx(3.6)  # 1.2 x 3x
    assert edited.level("p95_evaluate_band") == pytest.approx(1.8)  # 1.5x + 0.2 x (3x - 1.5x)
    assert restarts_over(shipped) == 6 and restarts_over(edited) == 9
    # detection budgets: the rule's window and the slack
    assert shipped.scaled(10).detect_budget_s("asgi_restarts") == 60 + 10
    assert window_budget(edited.scaled(10), "asgi_restarts") == 30 + 4
    assert edited.scaled(10).detect_budget_s("error_rate") == 6 + 4
    assert edited.scaled(10).detect_budget_s("wsgi_p95_latency") == 6 + 3 + 4
    # fixed budgets stay fixed; a ramp replaces the slack
    assert edited.detect_budget_s("data_corruption") == 10
    assert edited.scaled(10).detect_budget_s("memory_leak", "memory_leak_release") == 1 + 12 + 25
    # how long the bands watch that nothing fires, and the whole drills wait for a decision
    assert shipped.scaled(10).quiet_period_s("memory_leak") == 2 * 1 + 12 + 4
    assert edited.scaled(10).quiet_period_s("memory_leak") == 2 * 1 + 12 + 9
    assert edited.scaled(10).quiet_period_s("asgi_restarts") == 2 * 30 + 9  # its 300-s window
    assert shipped.scaled(10).decision_wait_s() == 60 + 30
    assert edited.scaled(10).decision_wait_s() == 90 + 30
    # the share of requests a slow release delays
    assert (shipped.drills.slowed_share, edited.drills.slowed_share) == (0.20, 0.10)


def test_checklist_limits_move_with_the_policy(edited: Policy) -> None:
    store = RecordStore()
    for i in range(200):  # 3 of 200 fail: 1.5 %
        outcome = Outcome.SERVER_ERROR if i < 3 else Outcome.OK
        store.append(RequestRecord("crud", T0 + i * 0.01, T0, T0 + i * 0.01, 0.01, outcome, 200))
    shipped = error_rate(store, load_policy(), T0 - 1, T0 + 5)
    moved = error_rate(store, edited, T0 - 1, T0 + 5)
    assert not shipped.passed and shipped.name == "Error rate < 1%"
    assert moved.passed and moved.name == "Error rate < 2%" and moved.measured == 0.015
    assert load_policy().scaled(10).checklist_period_s() == (20, 30)  # the floors
    assert edited.checklist_period_s() == (90, 60)


def test_budgets_and_success_criterion_move_with_the_policy(edited: Policy) -> None:
    assert spec(2).budget_s == 120 and spec(2, edited).budget_s == 60
    assert sequence_budget_s((1, 2), edited) == 90
    assert under_success_criterion(250) and not under_success_criterion(250, edited)
    result = RollbackResult((1, 2), T0, policy=edited)
    result.phases = [
        PhaseResult(1, "Stop Deployment", spec(1, edited).budget_s, T0, 5.0, status="ok"),
        PhaseResult(2, "Quick", spec(2, edited).budget_s, T0 + 5, 70.0, status="ok"),
    ]
    assert result.budget_s == 90
    assert [p.phase for p in result.over_budget()] == [2]  # 70 s > Phase 2's 60 s
    assert [c.passed for c in phases_within_budget(result)] == [True, False]
    check = rollback_in_time(result.time_to_rollback_s, edited, budget_s=result.budget_s)
    assert check.passed and check.name == "Rollback completes in < 4 minutes"
    assert not rollback_in_time(240.0, edited).passed  # strict: "< 4 minutes"


def test_announcement_timeline_comes_from_the_policy(edited: Policy) -> None:
    quick = edited.scaled(10)
    ann = Announcement(
        "reason",
        T0,
        expected_duration_s=quick.rollback.success_criterion_s,
        impact="x",
        status_interval_s=quick.status_update_interval_s(),
        time_scale=quick.time_scale,
    )
    text = ann.render()
    assert "(start + 4 minutes)" in text
    assert "Status updates: Every 12 seconds (the plan's 2 minutes, time-scaled 10x)" in text


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["drills"]["levels"][0].update(factor=0.9),
            "entry 'error_rate_above': field 'expect': the level 0.09 is not matched by error_rate",
        ),
        (
            lambda d: d["drills"]["levels"][0].update(offset=0.01),
            "entry 'error_rate_above': field 'factor': give exactly one of factor",
        ),
        (
            lambda d: d["drills"]["detection"][0].update(rule="nope"),
            "entry 'data_corruption': field 'rule': no trigger or matrix row 'nope'",
        ),
        (
            lambda d: d["rollback"]["phases"].__setitem__(4, d["rollback"]["phases"][3]),
            "field 'rollback.phases': each of phases 1-5 once",
        ),
        (
            lambda d: d["checklist"].update(max_error_rate=0),
            "field 'checklist.max_error_rate': Input should be greater than 0",
        ),
        (
            lambda d: d["rollback"]["phases"][1].update(budget="2m"),
            "entry 'rollback.phases[1]': field 'budget': unknown field",
        ),
        (lambda d: d.pop("checklist"), "field 'checklist': required field is missing"),
    ],
)
def test_bad_numbers_fail_in_one_line(tmp_path: Path, mutate: Any, expected: str) -> None:
    data = _data()
    mutate(data)
    with pytest.raises(PolicyError) as err:
        load_policy(_write(tmp_path, data))
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_unknown_level_or_detection_case_is_named() -> None:
    p = load_policy()
    with pytest.raises(PolicyError, match=r"no drills\.levels entry 'nope'"):
        p.level("nope")
    with pytest.raises(PolicyError, match=r"no drills\.detection entry 'nope'"):
        p.detect_budget_s("error_rate", "nope")
    with pytest.raises(PolicyError, match="is for asgi_restarts, not error_rate"):
        p.detect_budget_s("error_rate", "asgi_restarts_killed")


def test_how_close_a_level_must_come_to_its_aim_is_the_policys(tmp_path: Path) -> None:
    from rollback_drill.drills._support import check_level

    shipped = load_policy()
    data = _data()
    data["drills"]["level_tolerance"]["reading_points"] = 0.05
    wider = load_policy(_write(tmp_path, data))
    record: dict[str, object] = {}
    with pytest.raises(AssertionError, match=r"tolerance 0\.0150"):
        check_level(shipped, record.__setitem__, injected=0.20, measured=0.24)
    check_level(wider, record.__setitem__, injected=0.20, measured=0.24)
    assert record["level_error"] == pytest.approx(0.04)
