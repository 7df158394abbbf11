"""Prometheus alerting rules from the policy: the drills' triggers, for production.

``build_rules(policy)`` turns every rule the evaluator runs (triggers and the matrix rows that
are not restatements) into one alerting rule per concrete scope, or says why it cannot:

- the window becomes the range vector (at least two scrapes: ``scrape_interval_s``);
- ``sustained_s`` becomes ``for:``;
- ``min_samples`` becomes ``and on (...) <samples> >= N``;
- a relative threshold reads the recorded baseline ``rbd_baseline{baseline=ID, <scope>}``;
  ``--baseline FILE`` (the journal's ``baseline captured`` values) adds recording rules that
  hold it, without one the rule says it needs it and stays silent until the series exists
  (the evaluator does the same with an unusable baseline);
- rules on one ladder (metric, scope, baseline) stay apart as in the evaluator: a rung is
  quiet where a stronger rung matches (``unless``), e.g. P95 in (1.5x, 2x] on WSGI categories;
- severity, action, trigger id, scope and deadline are labels; the plan's text, the condition
  and the policy's resolution are annotations (static text: promtool can check them exactly).

The metrics the rules read (a contract: what the stack's exporters must expose):

==============================  ===========================================================
metric (policy)                 Prometheus series read
==============================  ===========================================================
error_rate (category, global)   ``nginx_http_requests_total{category, status}``: requests
                                nginx finished per endpoint category (crud, auth, admin,
                                streaming, websocket: the nginx-side exporter's ``category``
                                label, e.g. mapped from the location), error = ``status``
                                5xx (upstream down, timeouts: 502/504). ratio of rates.
                                Nginx itself down gives no data: pair with a blackbox probe.
db_connection_failure_rate      ``app_db_errors_total`` (the app's /metrics, docs/app-api.md)
                                / all ``nginx_http_requests_total``.
integrity_violations            not expressible: found by comparing acknowledged writes with
                                PostgreSQL row by row; no exporter has it.
security_findings               not expressible: a probe's verdict (data reachable without
                                the right session); no exporter has it.
p95_latency (category)          ``nginx_http_request_duration_seconds_bucket{category, le}``
                                (histogram). The engine judges a P95 by the lower end of its
                                80 % interval (order statistic at rank n*(0.95 - z*sqrt(
                                0.0475/n)), z = 1.2816); the rule asks histogram_quantile for
                                that quantile, n from ``..._count``. Equal up to the buckets'
                                resolution (PromQL interpolates inside a bucket).
container_restarts (service)    ``changes(container_start_time_seconds{...}[10m])`` (cAdvisor,
                                label ``container_label_com_docker_compose_service``): a
                                restart changes the container's start time. Several restarts
                                between two scrapes count as one.
memory_usage_ratio (service)    cAdvisor ``container_memory_working_set_bytes`` /
                                ``container_spec_memory_limit_bytes`` (limit > 0), mean over
                                the window, highest container of the service.
auth_failure_rate (global)      ``app_auth_failures_total`` (401s, refused WebSocket
                                handshakes) / all ``nginx_http_requests_total``. A server
                                cannot tell valid credentials from wrong ones: equal while the
                                clients present valid ones (the drill's load does).
redis_connection_failures       ``increase(app_redis_errors_total[1m])`` (the app counts
                                requests failed by a lost Redis connection).
websocket_disconnect_rate       not expressible from the app's metrics: it counts every
                                disconnect, normal closes too, and sessions accepted, not
                                sessions active in the window; needs a counter of abnormal
                                closes per active session.
cache_hit_rate (global)         redis_exporter ``redis_keyspace_hits_total`` /
                                (hits + ``redis_keyspace_misses_total``), as the monitor
                                reads Redis INFO; against ``rbd_baseline``.
support_tickets                 not expressible: tickets live in the support desk, not in a
                                metric.
==============================  ===========================================================

Not in the rules: the plan's "within 2 hours of deployment" (the rules are always on: scope
them with a silence or the deployment's own alert routing) and the evaluate verdict's
escalation at its deadline (a label says the deadline; a rule cannot remember its episode).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any

import yaml

from rollback_drill._policy_model import Comparison, Policy, Rule
from rollback_drill.errors import DrillError
from rollback_drill.metrics import Metric, Scope, ScopeKind, format_value
from rollback_drill.policy import load_policy
from rollback_drill.target import Target, load_target

__all__ = [
    "DEFAULT_SCRAPE_INTERVAL_S",
    "AlertRule",
    "BaselineRecord",
    "RuleSet",
    "Unexpressible",
    "add_parser",
    "build_rules",
    "load_baseline_file",
    "main",
]

DEFAULT_SCRAPE_INTERVAL_S = 15.0
REQUESTS = "nginx_http_requests_total"
DURATION = "nginx_http_request_duration_seconds"
SERVICE_LABEL = "container_label_com_docker_compose_service"
BASELINE_SERIES = "rbd_baseline"
_Z80 = NormalDist().inv_cdf(0.90)  # as records.py: each end of the 80 % interval

_NOT_EXPRESSIBLE = {
    Metric.INTEGRITY_VIOLATIONS: "data corruption is found by comparing acknowledged writes "
    "with PostgreSQL row by row (the drill's ledger); no exporter has it",
    Metric.SECURITY_FINDINGS: "a security exposure is a probe's verdict (data or admin "
    "reachable without the right session); no exporter has it",
    Metric.SUPPORT_TICKETS: "support tickets live in the support desk, not in a metric",
    Metric.WEBSOCKET_DISCONNECT_RATE: "the app counts every WebSocket disconnect, normal "
    "closes too, and sessions accepted rather than sessions active in the window; it needs "
    "a counter of abnormal closes per active session",
}


class BaselineFileError(DrillError):
    """The --baseline file cannot be read (exit status 11, like a policy problem)."""

    exit_code = 11


@dataclass(frozen=True)
class AlertRule:
    """One alerting rule: a policy rule at one concrete scope."""

    rule_id: str
    scope: Scope
    expr: str
    for_s: float | None
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    result_labels: Mapping[str, str]  # the labels the expression's result carries
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"alert": self.rule_id, "expr": self.expr}
        if self.for_s:
            out["for"] = duration(self.for_s)
        out["labels"] = dict(self.labels)
        out["annotations"] = dict(self.annotations)
        return out


@dataclass(frozen=True)
class BaselineRecord:
    """A recording rule holding one baseline value (from ``--baseline``)."""

    baseline_id: str
    scope: Scope
    value: float

    def as_dict(self) -> dict[str, Any]:
        labels = {"baseline": self.baseline_id, **_scope_labels(self.scope, None)}
        return {"record": BASELINE_SERIES, "expr": f"vector({self.value!r})", "labels": labels}


@dataclass(frozen=True)
class Unexpressible:
    rule_id: str
    reason: str


@dataclass
class RuleSet:
    alerts: list[AlertRule] = field(default_factory=list)
    baselines: list[BaselineRecord] = field(default_factory=list)
    unexpressible: list[Unexpressible] = field(default_factory=list)
    restated: dict[str, str] = field(default_factory=dict)  # matrix row -> trigger id
    group: str = "rollback-drill"

    def to_yaml(self, policy: Policy) -> str:
        rules: list[dict[str, Any]] = [b.as_dict() for b in self.baselines]
        rules += [a.as_dict() for a in self.alerts]
        head = [
            f"# Prometheus rules from {policy.source} ({policy.plan}),",
            "# written by `rollback-drill alerts`; the metrics they read: rollback_drill/alerts.py",
            *(f"# {line}" for line in self.report()),
        ]
        body = yaml.safe_dump(
            {"groups": [{"name": self.group, "rules": rules}]},
            sort_keys=False,
            width=100,
            allow_unicode=True,
        )
        return "\n".join(head) + "\n" + body

    def report(self) -> list[str]:
        """One line per policy rule: its alerts and notes, or why it has none."""
        lines: list[str] = []
        seen: list[str] = []
        for a in self.alerts:
            if a.rule_id not in seen:
                seen.append(a.rule_id)
        for rule_id in seen:
            mine = [a for a in self.alerts if a.rule_id == rule_id]
            scopes = ", ".join(str(a.scope) for a in mine)
            notes = sorted({n for a in mine for n in a.notes})
            extra = f"; {'; '.join(notes)}" if notes else ""
            lines.append(f"{rule_id}: alert at {scopes}{extra}")
        for u in self.unexpressible:
            lines.append(f"{u.rule_id}: NOT EXPRESSIBLE in PromQL: {u.reason}")
        for row, trigger in self.restated.items():
            lines.append(f"{row}: restates {trigger} (same alert)")
        return lines


def duration(seconds: float) -> str:
    """A Prometheus duration: whole seconds as ``60s``, else milliseconds."""
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


def _scope_labels(scope: Scope, target: Target | None) -> dict[str, str]:
    if scope.kind is ScopeKind.CATEGORY and scope.name is not None:
        return {"category": scope.name}
    if scope.kind is ScopeKind.SERVICE and scope.name is not None:
        return {SERVICE_LABEL: service_name(scope.name, target)}
    return {}


def service_name(name: str, target: Target | None) -> str:
    """The target's Compose service for a policy's service scope, which names a role (asgi,
    wsgi, ...); without a target the label holds the role's name."""
    return name if target is None else target.service(name)


def _sel(metric: str, labels: Mapping[str, str], **extra: str) -> str:
    parts = [f'{k}="{v}"' for k, v in labels.items()]
    parts += [f'{k}=~"{v}"' if k == "status" else f'{k}="{v}"' for k, v in extra.items()]
    return f"{metric}{{{','.join(parts)}}}" if parts else metric


@dataclass(frozen=True)
class _Signal:
    value: str  # PromQL whose result carries exactly the scope's labels
    samples: str | None  # PromQL of the sample count, or None (always enough)
    note: str | None = None


def _signal(metric: Metric, labels: Mapping[str, str], w: str) -> _Signal:
    by = f"sum by ({', '.join(labels)}) " if labels else "sum "
    if metric is Metric.ERROR_RATE:
        bad = f"{by}(rate({_sel(REQUESTS, labels, status='5..')}[{w}]))"
        all_ = f"{by}(rate({_sel(REQUESTS, labels)}[{w}]))"
        return _Signal(f"{bad} / {all_}", f"{by}(increase({_sel(REQUESTS, labels)}[{w}]))")
    if metric in (Metric.DB_CONNECTION_FAILURE_RATE, Metric.AUTH_FAILURE_RATE):
        counter = {
            Metric.DB_CONNECTION_FAILURE_RATE: "app_db_errors_total",
            Metric.AUTH_FAILURE_RATE: "app_auth_failures_total",
        }[metric]
        note = None
        if metric is Metric.AUTH_FAILURE_RATE:
            note = "auth failures over all requests (a server cannot tell valid credentials)"
        return _Signal(
            f"sum(rate({counter}[{w}])) / sum(rate({REQUESTS}[{w}]))",
            f"sum(increase({REQUESTS}[{w}]))",
            note,
        )
    if metric is Metric.P95_LATENCY:
        count = f"sum(increase({_sel(DURATION + '_count', labels)}[{w}]))"
        phi = f"scalar(0.95 - {_Z80:.6f} * sqrt(0.0475 / {count}))"
        by_le = ", ".join([*labels, "le"])
        buckets = f"sum by ({by_le}) (rate({_sel(DURATION + '_bucket', labels)}[{w}]))"
        return _Signal(
            f"histogram_quantile({phi}, {buckets})",
            f"{by}(increase({_sel(DURATION + '_count', labels)}[{w}]))",
            "P95 judged by the lower end of its 80 % interval, up to the histogram's buckets",
        )
    if metric is Metric.CONTAINER_RESTARTS:
        return _Signal(
            f"{by}(changes({_sel('container_start_time_seconds', labels)}[{w}]))",
            None,
            "restarts seen as changes of container_start_time_seconds (one per scrape at most)",
        )
    if metric is Metric.MEMORY_USAGE_RATIO:
        used = f"avg_over_time({_sel('container_memory_working_set_bytes', labels)}[{w}])"
        limit = f"avg_over_time({_sel('container_spec_memory_limit_bytes', labels)}[{w}])"
        return _Signal(f"max by ({', '.join(labels)}) ({used} / ({limit} > 0))", None)
    if metric is Metric.REDIS_CONNECTION_FAILURES:
        return _Signal(f"sum(increase(app_redis_errors_total[{w}]))", None)
    if metric is Metric.CACHE_HIT_RATE:
        hits = f"sum(rate(redis_keyspace_hits_total[{w}]))"
        misses = f"sum(rate(redis_keyspace_misses_total[{w}]))"
        samples = (
            f"sum(increase(redis_keyspace_hits_total[{w}])) "
            f"+ sum(increase(redis_keyspace_misses_total[{w}]))"
        )
        return _Signal(f"{hits} / ({hits} + {misses})", samples)
    raise ValueError(f"no PromQL for {metric}")  # _NOT_EXPRESSIBLE covers the rest


_OPS = {Comparison.GT: ">", Comparison.GE: ">=", Comparison.LT: "<", Comparison.LE: "<="}


def _condition(value: str, rule: Rule, on: str, base: str | None) -> str:
    """``value`` filtered by the rule's condition (thresholds times the baseline if any)."""

    def bound(x: float) -> str:
        return f"{x!r}" if base is None else f"{on}({x!r} * {base})"

    c = rule.condition
    if c.comparison is Comparison.BETWEEN:
        assert c.lower is not None and c.upper is not None
        lo = ">=" if c.include_lower else ">"
        hi = "<=" if c.include_upper else "<"
        return f"(({value}) {lo} {bound(c.lower)}) {hi} {bound(c.upper)}"
    assert c.threshold is not None
    return f"({value}) {_OPS[c.comparison]} {bound(c.threshold)}"


def _describe(rule: Rule, window: float, range_s: float) -> str:
    """The condition in words, e.g. ``error_rate > 10 % over 60s, at least 20 samples``."""
    c, metric = rule.condition, rule.metric

    def num(x: float) -> str:
        return f"{x:g}x baseline '{c.baseline}'" if c.baseline else format_value(metric, x)

    if c.comparison is Comparison.BETWEEN:
        assert c.lower is not None and c.upper is not None
        left, right = "[" if c.include_lower else "(", "]" if c.include_upper else ")"
        text = f"in {left}{num(c.lower)}, {num(c.upper)}{right}"
    else:
        assert c.threshold is not None
        text = f"{_OPS[c.comparison]} {num(c.threshold)}"
    over = f"over {duration(window)}"
    if range_s != window:
        over += f" (read over {duration(range_s)}: two scrapes)"
    held = f", held {duration(rule.sustained_s)}" if rule.sustained_s else ""
    return f"{metric} {text} {over}{held}, at least {rule.min_samples} samples"


def build_rules(
    policy: Policy,
    *,
    baseline: Mapping[str, float | None] | None = None,
    target: Target | None = None,
    scrape_interval_s: float = DEFAULT_SCRAPE_INTERVAL_S,
) -> RuleSet:
    """The policy's rules as Prometheus rules. ``baseline``: ``"<id>@<scope>" -> value`` (as
    the journal's ``baseline captured`` event writes them)."""
    out = RuleSet()
    restating: dict[str, list[Rule]] = {}
    for row in policy.matrix:
        if row.same_as is not None:
            out.restated[row.id] = row.same_as
            restating.setdefault(row.same_as, []).append(row)
    rules = policy.rules()
    for rule in rules:
        if rule.metric in _NOT_EXPRESSIBLE:
            out.unexpressible.append(Unexpressible(rule.id, _NOT_EXPRESSIBLE[rule.metric]))
            continue
        window = policy.scale(rule.window_s)
        range_s = max(window, 2 * scrape_interval_s)
        w = duration(range_s)
        for scope in rule.scopes():
            out.alerts.append(
                _alert(policy, rule, scope, window, range_s, w, target, baseline, restating, rules)
            )
    if baseline is not None:
        for key, value in baseline.items():
            bid, _, scope_text = key.partition("@")
            if value is None or not math.isfinite(value) or value <= 0:
                continue
            where = _parse_scope(scope_text)
            if where is not None:
                out.baselines.append(BaselineRecord(bid, where, float(value)))
    return out


def _alert(
    policy: Policy,
    rule: Rule,
    scope: Scope,
    window: float,
    range_s: float,
    w: str,
    target: Target | None,
    baseline: Mapping[str, float | None] | None,
    restating: Mapping[str, list[Rule]],
    rules: Sequence[Rule],
) -> AlertRule:
    labels = _scope_labels(scope, target)
    on = f"on ({', '.join(labels)}) " if labels else "on () "
    sig = _signal(rule.metric, labels, w)
    notes: list[str] = []
    if sig.note:
        notes.append(sig.note)
    if range_s != window:
        notes.append(f"window {duration(window)} read over {duration(range_s)} (two scrapes)")

    def base_of(r: Rule) -> str | None:
        ref = r.condition.baseline
        if ref is None:
            return None
        return _sel(BASELINE_SERIES, {"baseline": ref, **_scope_labels(scope, None)})

    ref = rule.condition.baseline
    if ref is not None:
        key = f"{ref}@{scope}"
        given = None if baseline is None else baseline.get(key)
        if baseline is None:
            notes.append(f"needs a baseline: record {base_of(rule)} or pass --baseline")
        elif given is None or not math.isfinite(given) or given <= 0:
            notes.append(f"needs a baseline: {key} has no usable value in the --baseline file")
    expr = _condition(sig.value, rule, on, base_of(rule))
    for other in rules:  # stronger rungs of the same ladder that overlap this one
        same = (other.metric, other.condition.baseline) == (rule.metric, ref)
        if not same or other is rule or scope not in other.scopes():
            continue
        if other.action.rank > rule.action.rank and other.condition.interval().intersects(
            rule.condition.interval()
        ):
            expr = f"({expr}) unless {on}({_condition(sig.value, other, on, base_of(other))})"
            notes.append(f"quiet where {other.id} matches")
    if sig.samples is not None:
        expr = f"({expr}) and {on}({sig.samples} >= {rule.min_samples})"
    static = {
        "severity": str(rule.severity),
        "action": str(rule.action),
        "trigger": rule.id,
        "scope": str(scope),
    }
    if rule.deadline_s is not None:
        static["deadline"] = duration(policy.scale(rule.deadline_s))
    if target is not None:
        static["target"] = target.name
    annotations = {
        "summary": rule.plan,
        "condition": _describe(rule, window, range_s),
    }
    if rule.resolution:
        annotations["resolution"] = rule.resolution
    rows = restating.get(rule.id, [])
    if rows:
        annotations["matrix"] = "; ".join(r.plan for r in rows)
    return AlertRule(
        rule.id,
        scope,
        expr,
        policy.scale(rule.sustained_s) if rule.sustained_s else None,
        static,
        annotations,
        labels,
        tuple(notes),
    )


def _parse_scope(text: str) -> Scope | None:
    kind, _, name = text.partition(":")
    try:
        if kind == "global":
            return Scope.everywhere()
        if kind == "category":
            return Scope.category(name)
        if kind == "service":
            return Scope.service(name)
    except ValueError:
        return None
    return None


def load_baseline_file(path: Path) -> dict[str, float | None]:
    """Baseline values ``"<id>@<scope>" -> value`` from a JSON object (the ``values`` of a
    ``baseline captured`` event, or the event itself) or a drill journal (its last one)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineFileError(f"{path}: cannot read the baseline: {exc}") from None
    data: Any = None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        for line in text.splitlines():  # a journal: JSON lines
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict) and (event.get("kind"), event.get("name")) == (
                "baseline",
                "captured",
            ):
                data = event
    if isinstance(data, dict) and isinstance(data.get("values"), dict):
        data = data["values"]
    if not isinstance(data, dict) or not data:
        raise BaselineFileError(
            f"{path}: no baseline values (a JSON object of '<baseline>@<scope>': value, "
            "or a journal with a 'baseline captured' event)"
        )
    out: dict[str, float | None] = {}
    for key, value in data.items():
        if "@" not in str(key) or _parse_scope(str(key).partition("@")[2]) is None:
            raise BaselineFileError(f"{path}: key {key!r} is not '<baseline>@<scope>'")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise BaselineFileError(f"{path}: {key}: {value!r} is not a number")
        out[str(key)] = None if value is None else float(value)
    return out


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """The ``alerts`` subcommand (``subparsers``: from ``ArgumentParser.add_subparsers``)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "alerts",
        help="write Prometheus alerting rules equivalent to the policy",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    p.add_argument("--policy", type=Path, default=None, help="policy file (the shipped one)")
    p.add_argument("--target", type=Path, default=None, help="target: its service names")
    p.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="baseline values (JSON, or a journal's 'baseline captured' event)",
    )
    p.add_argument(
        "--scrape-interval",
        type=float,
        default=DEFAULT_SCRAPE_INTERVAL_S,
        help="seconds between scrapes: ranges span at least two (15)",
    )
    p.add_argument("-o", "--output", type=Path, default=None, help="rules file (stdout)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    try:
        policy = load_policy(args.policy)
        target = None if args.target is None else load_target(args.target)
        baseline = None if args.baseline is None else load_baseline_file(args.baseline)
    except DrillError as exc:
        print(f"rollback-drill: {exc}", file=sys.stderr)
        return exc.exit_code
    if not args.scrape_interval > 0 or not math.isfinite(args.scrape_interval):
        print("rollback-drill: --scrape-interval must be a positive number", file=sys.stderr)
        return 2
    ruleset = build_rules(
        policy, baseline=baseline, target=target, scrape_interval_s=args.scrape_interval
    )
    text = ruleset.to_yaml(policy)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    for line in ruleset.report():
        print(f"alerts: {line}", file=sys.stderr)
    where = "stdout" if args.output is None else str(args.output)
    print(
        f"alerts: {len(ruleset.alerts)} alerting rule(s), {len(ruleset.baselines)} baseline "
        f"record(s), {len(ruleset.unexpressible)} rule(s) not expressible -> {where}",
        file=sys.stderr,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rollback-drill")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(["alerts", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
