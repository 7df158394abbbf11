"""Tests of the policy: the shipped default encodes the plan, bad policies fail in one line."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from rollback_drill.errors import PolicyError
from rollback_drill.metrics import Metric, Scope
from rollback_drill.policy import (
    DEFAULT_POLICY_PATH,
    Action,
    Comparison,
    Interval,
    Policy,
    Severity,
    load_policy,
)

CRITICAL = ["error_rate", "service_unavailable", "data_corruption", "security_exposure"]
CRITICAL += ["db_connection_failures"]
HIGH = ["wsgi_p95_latency", "asgi_restarts", "memory_leak", "auth_failures"]
HIGH += ["redis_connection_failures"]
MEDIUM = ["performance_degradation", "websocket_disconnects", "cache_hit_drop", "user_complaints"]
WSGI = ("crud", "auth", "admin")
ALL = (*WSGI, "streaming", "websocket")


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


def test_default_policy_has_the_fourteen_triggers_by_tier(policy: Policy) -> None:
    ids = [t.id for t in policy.triggers]
    assert ids == CRITICAL + HIGH + MEDIUM
    severities = {t.id: t.severity for t in policy.triggers}
    assert {severities[i] for i in CRITICAL} == {Severity.CRITICAL}
    assert {severities[i] for i in HIGH} == {Severity.HIGH}
    assert {severities[i] for i in MEDIUM} == {Severity.MEDIUM}
    assert {policy.rule(i).action for i in CRITICAL} == {Action.IMMEDIATE_ROLLBACK}
    assert {policy.rule(i).action for i in MEDIUM} == {Action.EVALUATE}
    assert all(policy.rule(i).action.is_rollback for i in HIGH)


@pytest.mark.parametrize(
    ("rule_id", "metric", "comparison", "threshold", "baseline", "scopes", "window_s"),
    [
        ("error_rate", "error_rate", "gt", 0.10, None, ALL, 60),
        ("service_unavailable", "error_rate", "ge", 1.0, None, ("global",), 30),
        ("data_corruption", "integrity_violations", "gt", 0, None, ("global",), 7200),
        ("security_exposure", "security_findings", "gt", 0, None, ("global",), 7200),
        ("db_connection_failures", "db_connection_failure_rate", "gt", 0.5, None, ("global",), 60),
        ("wsgi_p95_latency", "p95_latency", "gt", 2.0, "p95_pre_hybrid", WSGI, 60),
        ("asgi_restarts", "container_restarts", "gt", 5, None, ("asgi",), 600),
        (
            "memory_leak",
            "memory_usage_ratio",
            "gt",
            0.95,
            None,
            ("wsgi", "asgi"),
            10,
        ),
        ("auth_failures", "auth_failure_rate", "gt", 0.05, None, ("global",), 60),
        ("redis_connection_failures", "redis_connection_failures", "gt", 10, None, ("global",), 60),
        ("performance_degradation", "p95_latency", "gt", 1.5, "p95_pre_hybrid", ALL, 60),
        ("websocket_disconnects", "websocket_disconnect_rate", "gt", 0.3, None, ("websocket",), 60),
        ("cache_hit_drop", "cache_hit_rate", "lt", 0.5, "cache_hit_pre_hybrid", ("global",), 60),
        ("user_complaints", "support_tickets", "gt", 10, None, ("global",), 3600),
    ],
)
def test_each_trigger_encodes_the_plan(
    policy: Policy,
    rule_id: str,
    metric: str,
    comparison: str,
    threshold: float,
    baseline: str | None,
    scopes: tuple[str, ...],
    window_s: float,
) -> None:
    rule = policy.rule(rule_id)
    assert rule.metric == Metric(metric)
    assert rule.condition.comparison == Comparison(comparison)
    assert rule.condition.threshold == threshold
    assert rule.condition.baseline == baseline
    assert tuple(s.name or str(s) for s in rule.scopes()) == scopes
    assert rule.window_s == window_s
    assert rule.min_samples >= 1
    assert rule.plan and rule.resolution


def test_memory_leak_is_sustained_and_high_triggers_have_fifteen_minutes(policy: Policy) -> None:
    assert policy.rule("memory_leak").sustained_s == 120
    for rule_id in ("memory_leak", "redis_connection_failures"):
        rule = policy.rule(rule_id)
        assert (rule.action, rule.deadline_s) == (Action.ROLLBACK_WITHIN, 900)


@pytest.mark.parametrize(
    ("row_id", "plan_words", "action", "deadline_s", "same_as"),
    [
        ("matrix_error_rate_rollback", "> 10%", Action.IMMEDIATE_ROLLBACK, None, "error_rate"),
        ("error_rate_evaluate", "5-10%", Action.EVALUATE, 300, None),
        ("error_rate_monitor", "< 5%", Action.MONITOR, None, None),
        ("matrix_p95_rollback", "> 2x", Action.IMMEDIATE_ROLLBACK, None, "wsgi_p95_latency"),
        ("matrix_p95_evaluate", "1.5-2x", Action.EVALUATE, 600, "performance_degradation"),
        (
            "matrix_container_restarts",
            "> 5 in 10",
            Action.IMMEDIATE_ROLLBACK,
            None,
            "asgi_restarts",
        ),
        ("matrix_auth_failures", "> 5%", Action.IMMEDIATE_ROLLBACK, None, "auth_failures"),
        ("matrix_user_complaints", "> 20 in 1 hour", Action.EVALUATE, 600, "user_complaints"),
    ],
)
def test_every_decision_matrix_row_is_encoded(
    policy: Policy,
    row_id: str,
    plan_words: str,
    action: Action,
    deadline_s: float | None,
    same_as: str | None,
) -> None:
    row = policy.rule(row_id)
    assert row in policy.matrix
    assert plan_words in row.plan
    assert (row.action, row.deadline_s, row.same_as) == (action, deadline_s, same_as)


def test_matrix_bands_partition_the_error_rate(policy: Policy) -> None:
    rollback = policy.rule("error_rate").condition.interval()
    evaluate = policy.rule("error_rate_evaluate").condition.interval()
    monitor = policy.rule("error_rate_monitor").condition.interval()
    assert 0.10 in evaluate and 0.10 not in rollback
    assert 0.05 in evaluate and 0.05 not in monitor
    assert 0.01 in monitor and math.nextafter(0.01, 0) not in monitor
    assert not evaluate.intersects(monitor) and not evaluate.intersects(rollback)


def test_restating_rows_run_once(policy: Policy) -> None:
    assert len(policy.matrix) == 8
    evaluated = [r.id for r in policy.rules()]
    assert evaluated == [t.id for t in policy.triggers] + [
        "error_rate_evaluate",
        "error_rate_monitor",
    ]


def test_ambiguities_are_exposed_and_refer_to_entries(policy: Policy) -> None:
    ids = {a.id for a in policy.ambiguities}
    expected = {"p95_rollback_timing", "restarts_rollback_timing", "auth_rollback_timing"}
    expected |= {"complaints_threshold", "healthy_error_rate", "at_threshold", "unstated_windows"}
    expected |= {"zero_baseline", "time_scale_counts", "evaluate_for_rollback_deadline"}
    assert expected <= ids
    entries = {r.id for r in policy.entries()}
    for amb in policy.ambiguities:
        assert amb.plan_says and amb.resolution
        assert set(amb.entries) <= entries


def test_time_scale_compresses_windows_and_deadlines(policy: Policy) -> None:
    quick = policy.scaled(10)
    assert quick.time_scale == 10 and policy.time_scale == 1
    timings = {t.rule_id: t for t in quick.timings()}
    assert (timings["asgi_restarts"].window_s, timings["asgi_restarts"].effective_window_s) == (
        600,
        60,
    )
    assert timings["error_rate_evaluate"].effective_deadline_s == 30
    assert timings["memory_leak"].effective_sustained_s == 12
    assert quick.scale(quick.observation_window_s) == 720
    assert quick.source == policy.source == str(DEFAULT_POLICY_PATH)


@pytest.mark.parametrize("bad", [0.5, 0, -1, math.nan, math.inf, True])
def test_time_scale_below_one_or_not_finite_is_refused(policy: Policy, bad: float) -> None:
    with pytest.raises(PolicyError, match=r"field 'time_scale': must be a finite number >= 1"):
        policy.scaled(bad)


@pytest.mark.parametrize(
    ("interval", "value", "inside"),
    [
        (Interval(0.1, math.inf), 0.1, False),
        (Interval(0.1, math.inf, low_closed=True), 0.1, True),
        (Interval(0.05, 0.1, True, True), 0.1, True),
        (Interval(0.01, 0.05, True, False), 0.05, False),
        (Interval(-math.inf, 0.45), 0.45, False),
    ],
)
def test_interval_membership(interval: Interval, value: float, inside: bool) -> None:
    assert (value in interval) is inside


def test_interval_overlap_and_cover() -> None:
    band = Interval(0.05, 0.1, True, True)
    assert not band.intersects(Interval(0.1, math.inf))
    assert band.intersects(Interval(0.1, math.inf, low_closed=True))
    assert Interval(1.5, math.inf).covers(Interval(2.0, math.inf))
    assert not Interval(2.0, math.inf).covers(Interval(1.5, math.inf))


# --- bad input: one line, naming file, entry and field ---------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _default() -> dict[str, Any]:
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _rule(data: dict[str, Any], rule_id: str) -> dict[str, Any]:
    for rule in data["triggers"] + data["matrix"]:
        if rule["id"] == rule_id:
            assert isinstance(rule, dict)
            return rule
    raise KeyError(rule_id)


def _set(rule_id: str, path: str, value: object) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        target = _rule(data, rule_id)
        *parents, last = path.split(".")
        for part in parents:
            target = target[part]
        target[last] = value

    return mutate


def _drop(rule_id: str, path: str) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        target = _rule(data, rule_id)
        *parents, last = path.split(".")
        for part in parents:
            target = target[part]
        del target[last]

    return mutate


def _top(key: str, value: object) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        data[key] = value

    return mutate


def _first_trigger(value: object) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        data["triggers"][0] = value

    return mutate


def _both(first: Mutation, second: Mutation) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        first(data)
        second(data)

    return mutate


def _dead_rule(data: dict[str, Any]) -> None:
    extra = copy.deepcopy(_rule(data, "error_rate_evaluate"))
    extra.update(id="late_evaluate", condition={"comparison": "gt", "threshold": 0.2})
    data["matrix"].append(extra)


def _duplicate_id(data: dict[str, Any]) -> None:
    data["matrix"].append(copy.deepcopy(_rule(data, "error_rate_monitor")))


def _ambiguity_ref(data: dict[str, Any]) -> None:
    data["ambiguities"][0]["entries"] = ["wsgi_p95_latency", "no_such_rule"]


def _trigger_same_as(data: dict[str, Any]) -> None:
    _rule(data, "error_rate")["same_as"] = "service_unavailable"


BAD: list[tuple[str, Mutation, str]] = [
    ("unknown-top-field", _top("tresholds", 1), "field 'tresholds': unknown field (allowed: "),
    ("wrong-version", _top("version", 2), "field 'version': Input should be 1, got 2"),
    ("time-scale-yaml", _top("time_scale", 0.5), "field 'time_scale': Input should be greater"),
    ("no-triggers", _top("triggers", []), "field 'triggers': Tuple should have at least 1 item"),
    ("entry-not-mapping", _first_trigger("error_rate"), "entry 'triggers[0]': field '(entry)': "),
    (
        "entry-without-id",
        _drop("error_rate", "id"),
        "entry 'triggers[0]': field 'id': required field is missing",
    ),
    ("bad-id", _set("error_rate", "id", "Error-Rate"), "entry 'Error-Rate': field 'id': String"),
    (
        "unknown-rule-field",
        _set("error_rate", "thresold", 0.1),
        "entry 'error_rate': field 'thresold': unknown field (allowed: id, plan, metric,",
    ),
    (
        "unknown-condition-field",
        _set("error_rate", "condition.percent", 10),
        "entry 'error_rate': field 'condition.percent': unknown field (allowed: comparison,",
    ),
    (
        "unknown-metric",
        _set("error_rate", "metric", "latency_p99"),
        "entry 'error_rate': field 'metric': 'latency_p99' is not one of 'error_rate', ",
    ),
    (
        "unknown-severity",
        _set("error_rate", "severity", "urgent"),
        "entry 'error_rate': field 'severity': 'urgent' is not one of 'critical', 'high',",
    ),
    (
        "unknown-action",
        _set("error_rate", "action", "rollback"),
        "entry 'error_rate': field 'action': 'rollback' is not one of 'immediate_rollback',",
    ),
    (
        "unknown-comparison",
        _set("error_rate", "condition.comparison", ">"),
        "entry 'error_rate': field 'condition.comparison': '>' is not one of 'gt', 'ge',",
    ),
    (
        "unknown-scope-kind",
        _set("error_rate", "scope.kind", "endpoint"),
        "entry 'error_rate': field 'scope.kind': 'endpoint' is not one of 'global',",
    ),
    (
        "missing-severity",
        _drop("memory_leak", "severity"),
        "entry 'memory_leak': field 'severity': required field is missing",
    ),
    (
        "zero-window",
        _set("error_rate", "window_s", 0),
        "entry 'error_rate': field 'window_s': Input should be greater than 0, got 0",
    ),
    (
        "negative-window",
        _set("asgi_restarts", "window_s", -600),
        "entry 'asgi_restarts': field 'window_s': Input should be greater than 0, got -600",
    ),
    (
        "string-window",
        _set("error_rate", "window_s", "60s"),
        "entry 'error_rate': field 'window_s': Input should be a valid number, got '60s'",
    ),
    (
        "bool-window",
        _set("error_rate", "window_s", True),
        "entry 'error_rate': field 'window_s': Input should be a valid number, got True",
    ),
    (
        "nan-threshold",
        _set("error_rate", "condition.threshold", math.nan),
        "entry 'error_rate': field 'condition.threshold': Input should be a finite number",
    ),
    (
        "zero-min-samples",
        _set("error_rate", "min_samples", 0),
        "entry 'error_rate': field 'min_samples': Input should be greater than or equal to 1",
    ),
    (
        "bad-category",
        _set("error_rate", "scope.names", ["crud", "graphql"]),
        "entry 'error_rate': field 'scope.names[1]': unknown endpoint category 'graphql'",
    ),
    (
        "categories-without-names",
        _drop("error_rate", "scope.names"),
        "entry 'error_rate': field 'scope.names': required with kind 'categories'",
    ),
    (
        "global-with-name",
        _set("auth_failures", "scope.name", "auth"),
        "entry 'auth_failures': field 'scope.name': not used with kind 'global'",
    ),
    (
        "scope-kind-for-metric",
        _set("asgi_restarts", "scope", {"kind": "category", "name": "crud"}),
        "entry 'asgi_restarts': field 'scope.kind': container_restarts is read per service,",
    ),
    (
        "band-lower-above-upper",
        _set("error_rate_evaluate", "condition.lower", 0.12),
        "entry 'error_rate_evaluate': field 'condition.lower': must be below upper (0.12 >= 0.1)",
    ),
    (
        "band-lower-equals-upper",
        _set("error_rate_evaluate", "condition.lower", 0.10),
        "entry 'error_rate_evaluate': field 'condition.lower': must be below upper",
    ),
    (
        "band-missing-upper",
        _drop("error_rate_evaluate", "condition.upper"),
        "entry 'error_rate_evaluate': field 'condition.upper': required when comparison is",
    ),
    (
        "threshold-on-band",
        _set("error_rate_evaluate", "condition.threshold", 0.07),
        "entry 'error_rate_evaluate': field 'condition.threshold': not used with comparison",
    ),
    (
        "missing-threshold",
        _drop("error_rate", "condition.threshold"),
        "entry 'error_rate': field 'condition.threshold': required when comparison is 'gt'",
    ),
    (
        "percent-as-ratio",
        _set("error_rate", "condition.threshold", 10),
        "entry 'error_rate': field 'condition.threshold': 10 is outside [0, 1] for a ratio",
    ),
    (
        "never-matches",
        _set("auth_failures", "condition.threshold", 1.0),
        "entry 'auth_failures': field 'condition': can never match a ratio",
    ),
    (
        "negative-count",
        _set("asgi_restarts", "condition.threshold", -1),
        "entry 'asgi_restarts': field 'condition.threshold': a count cannot be negative",
    ),
    (
        "wrong-direction",
        _set("cache_hit_drop", "condition.comparison", "gt"),
        "entry 'cache_hit_drop': field 'condition.comparison': 'gt' fires when cache_hit_rate"
        " improves (lower is worse)",
    ),
    (
        "missing-baseline-ref",
        _set("wsgi_p95_latency", "condition.baseline", "p95_prod"),
        "entry 'wsgi_p95_latency': field 'condition.baseline': no baseline 'p95_prod' "
        "(defined: p95_pre_hybrid, cache_hit_pre_hybrid)",
    ),
    (
        "baseline-of-other-metric",
        _set("wsgi_p95_latency", "condition.baseline", "cache_hit_pre_hybrid"),
        "entry 'wsgi_p95_latency': field 'condition.baseline': baseline 'cache_hit_pre_hybrid' "
        "measures cache_hit_rate, not p95_latency",
    ),
    (
        "zero-factor",
        _set("performance_degradation", "condition.threshold", 0),
        "entry 'performance_degradation': field 'condition.threshold': a factor of the "
        "baseline must be > 0, got 0",
    ),
    (
        "evaluate-without-deadline",
        _drop("error_rate_evaluate", "deadline_s"),
        "entry 'error_rate_evaluate': field 'deadline_s': required with action 'evaluate'",
    ),
    (
        "immediate-with-deadline",
        _set("service_unavailable", "deadline_s", 60),
        "entry 'service_unavailable': field 'deadline_s': not used with action",
    ),
    (
        "overlapping-bands",
        _set("error_rate_evaluate", "condition.upper", 0.12),
        "entry 'error_rate_evaluate': field 'condition': overlaps 'error_rate' on error_rate "
        "with a different action (evaluate vs immediate_rollback)",
    ),
    (
        "overlapping-matrix-bands",
        _set("error_rate_monitor", "condition.upper", 0.06),
        "entry 'error_rate_monitor': field 'condition': overlaps 'error_rate_evaluate'",
    ),
    (
        "dead-rule",
        _dead_rule,
        "entry 'late_evaluate': field 'condition': can never decide: 'error_rate' "
        "(immediate_rollback) matches every value this rule matches",
    ),
    (
        "matrix-contradicts-trigger",
        _both(
            _set("matrix_p95_rollback", "action", "rollback_within"),
            _set("matrix_p95_rollback", "deadline_s", 900),
        ),
        "entry 'matrix_p95_rollback': field 'action': contradicts trigger 'wsgi_p95_latency' "
        "(rollback_within vs immediate_rollback)",
    ),
    (
        "matrix-threshold-as-in-plan",
        _set("matrix_user_complaints", "condition.threshold", 20),
        "entry 'matrix_user_complaints': field 'condition': contradicts trigger "
        "'user_complaints' (comparison=gt, threshold=20.0 vs comparison=gt, threshold=10.0)",
    ),
    (
        "same-as-unknown",
        _set("matrix_auth_failures", "same_as", "auth_failure"),
        "entry 'matrix_auth_failures': field 'same_as': no trigger 'auth_failure'",
    ),
    (
        "same-as-on-trigger",
        _trigger_same_as,
        "entry 'error_rate': field 'same_as': only a matrix row can restate a trigger",
    ),
    (
        "duplicate-id",
        _duplicate_id,
        "entry 'error_rate_monitor': field 'id': duplicate id",
    ),
    (
        "ambiguity-unknown-entry",
        _ambiguity_ref,
        "entry 'p95_rollback_timing': field 'entries[1]': no trigger or matrix row 'no_such_rule'",
    ),
]


@pytest.mark.parametrize(("mutate", "expected"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_policy_fails_in_one_line(tmp_path: Path, mutate: Mutation, expected: str) -> None:
    data = _default()
    mutate(data)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {expected}"), message
    assert "\n" not in message
    error = caught.value
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: 1\ntriggers: [\n", "line 3, column 1: invalid YAML: "),
        ("version: 1\nversion: 1\n", "line 2, column 1: invalid YAML: duplicate key 'version'"),
        ("a: b: c\n", "line 1, column 5: invalid YAML: mapping values are not allowed here"),
        ("", "field '(top level)': expected a mapping, got an empty file"),
        ("- 1\n- 2\n", "field '(top level)': expected a mapping, got a list"),
    ],
    ids=["unclosed", "duplicate-key", "syntax", "empty", "list"],
)
def test_bad_yaml_fails_in_one_line(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert str(caught.value).startswith(f"{path}: {expected}"), str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_file_fails_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(PolicyError, match=r"absent\.yaml: cannot read the policy: .*No such"):
        load_policy(path)


def test_errors_count_the_problems_not_reported(tmp_path: Path) -> None:
    data = _default()
    _rule(data, "error_rate")["severity"] = "urgent"
    _rule(data, "error_rate")["window_s"] = 0
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    with pytest.raises(PolicyError, match=r"\(and 1 more problem\(s\)\)$"):
        load_policy(path)


def test_a_copy_of_the_default_loads_and_scopes_expand(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"), encoding="utf-8")
    policy = load_policy(path)
    assert policy.source == str(path)
    assert policy.rule("memory_leak").scopes() == (
        Scope.service("wsgi"),
        Scope.service("asgi"),
    )


@pytest.mark.parametrize(("scale", "expected"), [(1, 120.0), (4, 30.0), (10, 24.0), (100, 24.0)])
def test_baseline_windows_are_scaled_down_to_a_floor(scale: float, expected: float) -> None:
    """A time scale compresses a baseline's window only down to 24 s: a reference sample."""
    policy = load_policy().scaled(scale)
    assert policy.baseline_window_s("p95_pre_hybrid") == expected
    assert policy.longest_baseline_window_s() == expected


def test_a_baseline_window_shorter_than_the_floor_is_kept() -> None:
    policy = load_policy()
    short = policy.model_copy(
        update={"baselines": [b.model_copy(update={"window_s": 10}) for b in policy.baselines]}
    ).scaled(10)
    assert short.baseline_window_s("p95_pre_hybrid") == 10.0


def test_the_baseline_floor_is_policy_data() -> None:
    policy = load_policy()
    assert policy.baseline_min_window_s == 24
    lower = policy.model_copy(update={"baseline_min_window_s": 6.0}).scaled(10)
    assert lower.baseline_window_s("p95_pre_hybrid") == 12.0
