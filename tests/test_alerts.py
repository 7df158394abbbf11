"""Tests of ``rollback-drill alerts``: the rules cover the policy, promtool accepts them, and
they fire when the engine decides.

Scenarios are raw series sampled every ``STEP`` seconds (what exporters would expose). The same
samples go to promtool (``promtool test rules``, asserting the exact time each alert starts
firing and that no other alert fires) and to the engine's evaluator through ``SeriesSource``,
which computes each metric over the window as the catalogue defines it (ranges closed at both
ends, as Prometheus 2.x reads them). The equivalence test asserts that both decide the same
(trigger, scope) pairs within one evaluation interval.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import pytest
import yaml

from rollback_drill.alerts import (
    SERVICE_LABEL,
    AlertRule,
    RuleSet,
    build_rules,
    load_baseline_file,
    main,
)
from rollback_drill.baseline import Baseline, needed
from rollback_drill.decisions import DecisionKind, Reading
from rollback_drill.evaluator import Evaluator
from rollback_drill.metrics import Metric, Scope, ScopeKind
from rollback_drill.policy import Policy, load_policy
from rollback_drill.records import _Z80  # the same z as the engine's P95 interval
from tests.paths import REFERENCE_TARGET

STEP = 5  # seconds between samples = the rules' evaluation interval = the engine's tick
FAULT = 300  # when each scenario's fault starts
END = 900
P95_BASE = 0.1
CACHE_BASE = 0.9
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (scripts/bootstrap.sh installs it)"
)

CRUD, STREAMING = Scope.category("crud"), Scope.category("streaming")
WSGI, ASGI = Scope.service("wsgi"), Scope.service("asgi")
GLOBAL = Scope.everywhere()


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


def _baseline_values(policy: Policy) -> dict[str, float | None]:
    base = {"p95_pre_hybrid": P95_BASE, "cache_hit_pre_hybrid": CACHE_BASE}
    return {f"{bid}@{scope}": base[bid] for bid, scope in needed(policy)}


# --- the rule set ----------------------------------------------------------------------------


def test_every_rule_is_an_alert_or_said_not_expressible(policy: Policy) -> None:
    rules = build_rules(policy)
    alerted = {(a.rule_id, a.scope) for a in rules.alerts}
    unexpressible = {u.rule_id for u in rules.unexpressible}
    for rule in policy.rules():
        if rule.id in unexpressible:
            assert all((rule.id, s) not in alerted for s in rule.scopes())
        else:
            assert {(rule.id, s) for s in rule.scopes()} <= alerted, rule.id
    assert unexpressible == {
        "data_corruption",
        "security_exposure",
        "websocket_disconnects",
        "user_complaints",
    }
    report = "\n".join(rules.report())
    for rule_id in unexpressible:
        assert f"{rule_id}: NOT EXPRESSIBLE in PromQL: " in report
    for row in policy.matrix:
        if row.same_as:
            assert f"{row.id}: restates {row.same_as}" in report


def test_labels_for_and_annotations_come_from_the_policy(policy: Policy) -> None:
    rules = build_rules(policy)
    p95 = _alert(rules, "wsgi_p95_latency", CRUD)
    assert p95.for_s == 30 and p95.as_dict()["for"] == "30s"
    assert dict(p95.labels) == {
        "severity": "high",
        "action": "immediate_rollback",
        "trigger": "wsgi_p95_latency",
        "scope": "category:crud",
    }
    assert p95.annotations["summary"] == policy.rule("wsgi_p95_latency").plan
    assert "P95 latency | > 2x baseline" in p95.annotations["matrix"]
    memory = _alert(rules, "memory_leak", WSGI)
    assert memory.for_s == 120 and memory.labels["deadline"] == "900s"
    assert "[30s]" in memory.expr  # a 10 s window spans two 15 s scrapes
    assert any("needs a baseline" in n for n in p95.notes)  # no --baseline given
    assert 'rbd_baseline{baseline="p95_pre_hybrid",category="crud"}' in p95.expr
    perf = _alert(rules, "performance_degradation", CRUD)
    assert "unless" in perf.expr  # quiet above 2x, where the rollback rung speaks
    assert "unless" not in _alert(rules, "performance_degradation", STREAMING).expr


def test_target_maps_service_names() -> None:
    from rollback_drill.target import load_target

    target = load_target(REFERENCE_TARGET)
    rules = build_rules(load_policy(), target=target)
    restarts = _alert(rules, "asgi_restarts", ASGI)
    assert restarts.labels["target"] == "reference"
    assert f'{SERVICE_LABEL}="backend-asgi"' in restarts.expr


def test_baseline_file_from_a_journal_or_values(tmp_path: Path, policy: Policy) -> None:
    values = {"p95_pre_hybrid@category:crud": 0.04, "p95_pre_hybrid@category:websocket": None}
    event = {"kind": "baseline", "name": "captured", "wall": 1.0, "mono": 1.0, "values": values}
    journal = tmp_path / "journal.jsonl"
    journal.write_text(json.dumps({"kind": "marker", "name": "x"}) + "\n" + json.dumps(event))
    plain = tmp_path / "baseline.json"
    plain.write_text(json.dumps(values))
    assert load_baseline_file(journal) == load_baseline_file(plain) == values
    rules = build_rules(policy, baseline=load_baseline_file(plain))
    assert [(b.baseline_id, str(b.scope), b.value) for b in rules.baselines] == [
        ("p95_pre_hybrid", "category:crud", 0.04)
    ]
    ws = _alert(rules, "performance_degradation", Scope.category("websocket"))
    assert any("no usable value" in n for n in ws.notes)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"crud": 1}))
    out = tmp_path / "rules.yml"
    assert main(["--baseline", str(bad), "-o", str(out)]) == 11
    assert not out.exists()


def test_command_writes_rules_and_says_what_it_cannot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rules.yml"
    assert main(["-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "alerts: data_corruption: NOT EXPRESSIBLE in PromQL" in err
    assert "alerts: cache_hit_drop: alert at global; needs a baseline" in err
    doc = yaml.safe_load(out.read_text())
    names = {r["alert"] for r in doc["groups"][0]["rules"]}
    assert "error_rate" in names and "data_corruption" not in names
    assert "# user_complaints: NOT EXPRESSIBLE in PromQL" in out.read_text()


def _alert(rules: RuleSet, rule_id: str, scope: Scope) -> AlertRule:
    return next(a for a in rules.alerts if a.rule_id == rule_id and a.scope == scope)


@needs_promtool
@pytest.mark.parametrize("with_baseline", [False, True], ids=["recorded", "constant"])
def test_promtool_checks_the_rules(tmp_path: Path, policy: Policy, with_baseline: bool) -> None:
    baseline = _baseline_values(policy) if with_baseline else None
    rules = tmp_path / "rules.yml"
    rules.write_text(build_rules(policy, baseline=baseline).to_yaml(policy))
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    n = len(build_rules(policy, baseline=baseline).alerts) + (6 if with_baseline else 0)
    assert f"SUCCESS: {n} rules found" in done.stdout


# --- scenarios -------------------------------------------------------------------------------

Fn = Callable[[float], float]


@dataclass(frozen=True)
class Series:
    name: str
    labels: dict[str, str]
    fn: Fn

    def text(self) -> str:
        inner = ",".join(f'{k}="{v}"' for k, v in self.labels.items())
        return f"{self.name}{{{inner}}}"

    def values(self) -> str:
        return " ".join(f"{self.fn(t):.10g}" for t in range(0, END + 1, STEP))


@dataclass(frozen=True)
class Fires:
    """The alert ``rule_id`` at ``scope`` starts firing at ``at`` (and stops at ``until``)."""

    rule_id: str
    scope: Scope
    at: int
    until: int | None = None


@dataclass
class Scenario:
    name: str
    series: list[Series]
    fires: list[Fires]
    extra_checks: list[int] = field(default_factory=list)


def _after(rate: float, start: float = FAULT) -> Fn:
    return lambda t: max(0.0, t - start) * rate


def _requests(category: str, total: float, errors: Fn) -> list[Series]:
    """A category's request counter split into 200s and 500s (``total`` requests per second)."""
    return [
        Series(
            "nginx_http_requests_total",
            {"category": category, "status": "200"},
            lambda t: total * t - errors(t),
        ),
        Series("nginx_http_requests_total", {"category": category, "status": "500"}, errors),
    ]


BUCKETS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 1.0)


def _latency(category: str, rate: float, healthy: float, faulty: float) -> list[Series]:
    """A histogram whose requests take ``healthy`` s before the fault and ``faulty`` after."""
    out = []
    for le in (*BUCKETS, float("inf")):

        def cum(t: float, le: float = le) -> float:
            before, after = min(t, FAULT) * rate, max(0.0, t - FAULT) * rate
            return (before if healthy <= le else 0.0) + (after if faulty <= le else 0.0)

        text = "+Inf" if le == float("inf") else f"{le:g}"
        labels = {"category": category, "le": text}
        out.append(Series("nginx_http_request_duration_seconds_bucket", labels, cum))
    out.append(
        Series(
            "nginx_http_request_duration_seconds_count", {"category": category}, lambda t: t * rate
        )
    )
    return out


def _container(service: str) -> dict[str, str]:
    return {SERVICE_LABEL: service, "id": f"/docker/{service}", "name": f"rbd-{service}-1"}


LIMIT = 512 * 2**20


def _memory(service: str, healthy: float, faulty: float) -> list[Series]:
    labels = _container(service)
    used = lambda t: LIMIT * (healthy if t < FAULT else faulty)  # noqa: E731
    return [
        Series("container_memory_working_set_bytes", labels, used),
        Series("container_spec_memory_limit_bytes", labels, lambda t: float(LIMIT)),
    ]


def _restarts(service: str, every_s: int) -> list[Series]:
    """A container restarted every ``every_s`` seconds from the fault on."""

    def start_time(t: float) -> float:
        return 100.0 if t < FAULT else FAULT + (t - FAULT) // every_s * every_s

    return [Series("container_start_time_seconds", _container(service), start_time)]


SCENARIOS = [
    Scenario(
        "error rate above 10 %",
        _requests("crud", 10, _after(1.5)),
        [
            Fires("error_rate_monitor", CRUD, 305, until=320),
            Fires("error_rate_evaluate", CRUD, 320, until=345),
            Fires("error_rate", CRUD, 345),
        ],
    ),
    Scenario(
        "error rate in the 5-10 % band",
        _requests("crud", 10, _after(0.7)),
        [
            Fires("error_rate_monitor", CRUD, 310, until=345),
            Fires("error_rate_evaluate", CRUD, 345),
        ],
    ),
    Scenario(
        "P95 above 2x baseline (crud) and 1.75x (streaming)",
        _latency("crud", 10, 0.08, 0.27) + _latency("streaming", 10, 0.08, 0.175),
        [
            Fires("wsgi_p95_latency", CRUD, 335),
            Fires("performance_degradation", STREAMING, 335),
        ],
    ),
    Scenario(
        "ASGI restarts > 5 in 10 minutes",
        _restarts("asgi", 60),
        [Fires("asgi_restarts", ASGI, 600)],
    ),
    Scenario(
        "memory above 95 % sustained",
        _memory("wsgi", 0.5, 0.97) + _memory("asgi", 0.4, 0.4),
        [Fires("memory_leak", WSGI, 430)],
    ),
    Scenario(
        "Redis connection failures > 10 per minute",
        [Series("app_redis_errors_total", {}, _after(0.25))],
        [Fires("redis_connection_failures", GLOBAL, 345)],
    ),
]


@dataclass
class SeriesSource:
    """The engine's view of the scenario's samples: each metric over ``[now - window, now]``."""

    series: Sequence[Series]

    def _pick(self, name: str, **labels: str) -> list[Series]:
        return [
            s
            for s in self.series
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]

    @staticmethod
    def _times(window_s: float, now: float) -> list[float]:
        return [t for t in range(0, END + 1, STEP) if now - window_s <= t <= now]

    def _increase(self, series: list[Series], ts: list[float]) -> float | None:
        if len(ts) < 2 or not series:
            return None
        return sum(s.fn(ts[-1]) - s.fn(ts[0]) for s in series)

    def read(self, metric: str, scope: Scope, window_s: float, now: float) -> Reading:
        ts = self._times(window_s, now)
        where = {"category": scope.name} if scope.kind is ScopeKind.CATEGORY and scope.name else {}
        service = {SERVICE_LABEL: scope.name or ""}
        if metric == Metric.ERROR_RATE:
            total = self._increase(self._pick("nginx_http_requests_total", **where), ts)
            bad = self._increase(self._pick("nginx_http_requests_total", status="500", **where), ts)
            if not total or bad is None:
                return Reading(None, 0)
            return Reading(bad / total, int(total))
        if metric == Metric.P95_LATENCY:
            return self._p95(where, ts)
        if metric == Metric.CONTAINER_RESTARTS:
            found = self._pick("container_start_time_seconds", **service)
            if not found or not ts:
                return Reading(None, 0)
            values = [found[0].fn(t) for t in ts]
            return Reading(float(sum(a != b for a, b in pairwise(values))), 1)
        if metric == Metric.MEMORY_USAGE_RATIO:
            used = self._pick("container_memory_working_set_bytes", **service)
            limit = self._pick("container_spec_memory_limit_bytes", **service)
            if not used or not limit or not ts:
                return Reading(None, 0)
            mean = sum(used[0].fn(t) for t in ts) / sum(limit[0].fn(t) for t in ts)
            return Reading(mean, len(ts))
        if metric == Metric.REDIS_CONNECTION_FAILURES:
            n = self._increase(self._pick("app_redis_errors_total"), ts)
            return Reading(None, 0) if n is None else Reading(n, len(ts))
        return Reading(None, 0)

    def _p95(self, where: dict[str, str], ts: list[float]) -> Reading:
        buckets = self._pick("nginx_http_request_duration_seconds_bucket", **where)
        if len(ts) < 2 or not buckets:
            return Reading(None, 0)
        cum = sorted(
            (float(s.labels["le"]), s.fn(ts[-1]) - s.fn(ts[0])) for s in buckets
        )  # (upper bound, requests at or below it)
        n = cum[-1][1]
        if n <= 0:
            return Reading(None, 0)
        half = _Z80 * (0.95 * 0.05 / n) ** 0.5
        return Reading(
            _quantile(0.95, cum), int(n), _quantile(0.95 - half, cum), _quantile(0.95 + half, cum)
        )


def _quantile(q: float, cum: list[tuple[float, float]]) -> float:
    """Prometheus' histogram_quantile: linear inside the bucket holding rank q*n."""
    rank = q * cum[-1][1]
    lower, below = 0.0, 0.0
    for le, count in cum:
        if count >= rank:
            if le == float("inf"):
                return lower
            return lower + (le - lower) * (rank - below) / (count - below)
        lower, below = le, count
    return lower


def _engine_first(policy: Policy, scenario: Scenario) -> dict[tuple[str, Scope], float]:
    values = _baseline_values(policy)
    given = {(k.partition("@")[0], _scope(k.partition("@")[2])): v for k, v in values.items()}
    ev = Evaluator(policy, Baseline.from_mapping(policy, given), deployed_at=0.0)
    source = SeriesSource(scenario.series)
    first: dict[tuple[str, Scope], float] = {}
    for t in range(0, END + 1, STEP):
        for d in ev.tick(float(t), source):
            if d.kind is not DecisionKind.CLEARED:
                first.setdefault((d.trigger_id, d.scope), d.time)
    return first


def _scope(text: str) -> Scope:
    kind, _, name = text.partition(":")
    return Scope.everywhere() if kind == "global" else Scope(ScopeKind(kind), name)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_engine_decides_at_the_expected_times(policy: Policy, scenario: Scenario) -> None:
    """The engine half of the equivalence: its first decisions, exactly."""
    got = _engine_first(policy, scenario)
    assert got == {(f.rule_id, f.scope): f.at for f in scenario.fires}


def _promtool_tests(rules: RuleSet, scenario: Scenario) -> dict[str, object]:
    """A promtool test: at each firing time and one interval before it, and at the end, every
    alert name fires exactly at the scopes the scenario expects."""
    checks = sorted({0, END, *scenario.extra_checks} | {f.at for f in scenario.fires})
    checks = sorted(set(checks) | {f.at - STEP for f in scenario.fires})
    names = sorted({a.rule_id for a in rules.alerts})
    cases = []
    for t in checks:
        for name in names:
            expected = []
            for f in scenario.fires:
                if f.rule_id == name and f.at <= t and (f.until is None or t < f.until):
                    alert = _alert(rules, f.rule_id, f.scope)
                    expected.append(
                        {
                            "exp_labels": {**alert.result_labels, **alert.labels},
                            "exp_annotations": dict(alert.annotations),
                        }
                    )
            cases.append({"eval_time": f"{t}s", "alertname": name, "exp_alerts": expected})
    return {
        "interval": f"{STEP}s",
        "input_series": [{"series": s.text(), "values": s.values()} for s in scenario.series],
        "alert_rule_test": cases,
    }


@needs_promtool
def test_promtool_fires_the_rules_on_the_scenarios_like_the_engine(
    tmp_path: Path, policy: Policy
) -> None:
    """Both halves: promtool fires exactly the expected alerts at the expected times (every
    scenario in one ``promtool test rules`` run), and the engine decides the same (trigger,
    scope) pairs on the same samples within one evaluation interval."""
    rules = build_rules(policy, baseline=_baseline_values(policy), scrape_interval_s=STEP)
    (tmp_path / "rules.yml").write_text(rules.to_yaml(policy))
    doc = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": f"{STEP}s",
        "tests": [_promtool_tests(rules, s) for s in SCENARIOS],
    }
    test_file = tmp_path / "test.yml"
    test_file.write_text(yaml.safe_dump(doc, sort_keys=False, width=1000))
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, "test", "rules", str(test_file)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "SUCCESS" in done.stdout
    for scenario in SCENARIOS:
        engine = _engine_first(policy, scenario)
        prometheus = {(f.rule_id, f.scope): f.at for f in scenario.fires}
        assert engine.keys() == prometheus.keys(), scenario.name
        for key, at in prometheus.items():
            assert abs(engine[key] - at) <= STEP, (scenario.name, key, engine[key], at)
