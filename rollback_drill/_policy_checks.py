"""The policy's meaning checks: what pydantic's shape validation cannot see.

Each check yields a ``Problem`` naming the entry and field; the loader reports the first.
Per entry: condition shape, bounds within the metric's range, comparison direction, scope
kind and names, baseline reference, action and deadline, matrix rows that restate a
trigger. Across entries: unique ids, bands overlapping with different actions, rules that
can never decide because a stronger rule covers them, ambiguity references. The other
sections: each rollback phase once, the checklist's P95 rule relative to a baseline, detection
budgets and levels naming known rules, and each level on the side of its rule's threshold it
says (``expect``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations

from rollback_drill._policy_model import Comparison, Interval, Level, Policy, Rule, level_of
from rollback_drill.errors import PolicyError
from rollback_drill.metrics import CATALOGUE, EndpointCategory, ScopeKind, Unit, Worse

_SINGULAR = {ScopeKind.CATEGORIES: ScopeKind.CATEGORY, ScopeKind.SERVICES: ScopeKind.SERVICE}
_RESTATED: tuple[str, ...] = ("metric", "scope", "window_s", "min_samples", "condition")
_RESTATED += ("sustained_s", "severity", "action", "deadline_s")


@dataclass(frozen=True)
class Problem:
    entry: str | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"entry '{self.entry}': " if self.entry is not None else ""
        return f"{where}field '{self.field}': {self.message}"


def first_problem(policy: Policy) -> Problem | None:
    """The first problem; cross-entry checks only run once every entry is well-formed."""
    return next(_problems(policy), None)


def _problems(policy: Policy) -> Iterator[Problem]:
    yield from _unique_ids(policy)
    for rule in policy.triggers:
        if rule.same_as is not None:
            yield Problem(rule.id, "same_as", "only a matrix row can restate a trigger")
    for rule in policy.entries():
        yield from _condition(rule)
        yield from _scope(rule)
        yield from _baseline_ref(policy, rule)
        yield from _action(rule)
    for row in policy.matrix:
        yield from _restatement(policy, row)
    yield from _ladders(policy.rules())
    for amb in policy.ambiguities:
        known = {r.id for r in policy.entries()}
        for i, ref in enumerate(amb.entries):
            if ref not in known:
                yield Problem(amb.id, f"entries[{i}]", f"no trigger or matrix row '{ref}'")
    yield from _sections(policy)


def _sections(policy: Policy) -> Iterator[Problem]:
    numbers = [p.phase for p in policy.rollback.phases]
    if sorted(numbers) != [1, 2, 3, 4, 5]:
        yield Problem(None, "rollback.phases", f"each of phases 1-5 once, got {numbers}")
    known = {r.id: r for r in policy.entries()}
    p95 = policy.checklist.p95
    rule = known.get(p95.rule)
    if rule is None or rule.condition.baseline is None or rule.condition.threshold is None:
        yield Problem(
            None, "checklist.p95.rule", f"'{p95.rule}' is no rule with a threshold on a baseline"
        )
    ids: set[str] = set()
    for d in policy.drills.detection:
        if d.id in ids:
            yield Problem(d.id, "id", "duplicate drills.detection id")
        ids.add(d.id)
        if d.rule not in known:
            yield Problem(d.id, "rule", f"no trigger or matrix row '{d.rule}'")
        if (d.budget_s is None) == (d.slack_s is None):
            yield Problem(d.id, "budget_s", "give exactly one of budget_s and slack_s")
    ids = set()
    for level in policy.drills.levels:
        if level.id in ids:
            yield Problem(level.id, "id", "duplicate drills.levels id")
        ids.add(level.id)
        yield from _level(level, known)


def _level(level: Level, known: dict[str, Rule]) -> Iterator[Problem]:
    given = [k for k in ("factor", "offset", "position") if getattr(level, k) is not None]
    if len(given) != 1:
        yield Problem(level.id, "factor", "give exactly one of factor, offset and position")
        return
    rule = known.get(level.rule)
    up_to = known.get(level.up_to) if level.up_to is not None else None
    if rule is None or (level.up_to is not None and up_to is None):
        missing = level.rule if rule is None else level.up_to
        yield Problem(level.id, "rule", f"no trigger or matrix row '{missing}'")
        return
    if level.up_to is not None and level.position is None:
        yield Problem(level.id, "up_to", "up_to goes with position")
        return
    try:
        value = level_of(level, rule, up_to)
    except PolicyError as exc:
        yield Problem(level.id, "rule", str(exc))
        return
    if up_to is not None and value in up_to.condition.interval():
        yield Problem(level.id, "position", f"the level {value:g} is past {up_to.id} as well")
    fires = value in rule.condition.interval()
    if fires != (level.expect == "fires"):
        yield Problem(
            level.id,
            "expect",
            f"the level {value:g} is {'' if fires else 'not '}matched by {rule.id} "
            f"({_show(rule.condition.comparison)} {_show(rule.condition.bounds())}), "
            f"so it does not {'stay quiet' if fires else 'fire'}",
        )


def _unique_ids(policy: Policy) -> Iterator[Problem]:
    for group in (policy.entries(), policy.baselines, policy.ambiguities):
        seen: set[str] = set()
        for item in group:
            if item.id in seen:
                yield Problem(item.id, "id", "duplicate id (ids are unique in their list)")
            seen.add(item.id)


def _condition(rule: Rule) -> Iterator[Problem]:
    c = rule.condition
    band = c.comparison is Comparison.BETWEEN
    for name in ("lower", "upper") if band else ("threshold",):
        if getattr(c, name) is None:
            yield Problem(
                rule.id, f"condition.{name}", f"required when comparison is '{c.comparison}'"
            )
    for name in ("threshold",) if band else ("lower", "upper"):
        if getattr(c, name) is not None:
            yield Problem(
                rule.id, f"condition.{name}", f"not used with comparison '{c.comparison}'"
            )
    for name in ("include_lower", "include_upper"):
        if not band and not getattr(c, name):
            yield Problem(rule.id, f"condition.{name}", "only used with comparison 'between'")
    if band and c.lower is not None and c.upper is not None and c.lower >= c.upper:
        yield Problem(
            rule.id, "condition.lower", f"must be below upper ({c.lower:g} >= {c.upper:g})"
        )
    info = CATALOGUE[rule.metric]
    wrong_way = (c.comparison in (Comparison.LT, Comparison.LE) and info.worse is Worse.HIGHER) or (
        c.comparison in (Comparison.GT, Comparison.GE) and info.worse is Worse.LOWER
    )
    if wrong_way:
        yield Problem(
            rule.id,
            "condition.comparison",
            f"'{c.comparison}' fires when {rule.metric} improves ({info.worse} is worse)",
        )
    yield from _range(rule)


def _range(rule: Rule) -> Iterator[Problem]:
    """Bounds within what the metric can take; a condition that can match at all."""
    c = rule.condition
    if c.baseline is not None:
        possible, what = Interval(0, math.inf, low_closed=True), "a factor of the baseline"
        for name in ("threshold", "lower", "upper"):
            value = getattr(c, name)
            if value is not None and value <= 0:
                yield Problem(rule.id, f"condition.{name}", f"{what} must be > 0, got {value:g}")
    elif CATALOGUE[rule.metric].unit is Unit.RATIO:
        possible, what = Interval(0, 1, True, True), "a ratio (write 10 % as 0.10)"
        for name in ("threshold", "lower", "upper"):
            value = getattr(c, name)
            if value is not None and not 0 <= value <= 1:
                yield Problem(
                    rule.id, f"condition.{name}", f"{value:g} is outside [0, 1] for {what}"
                )
    else:
        possible, what = Interval(0, math.inf, low_closed=True), str(CATALOGUE[rule.metric].unit)
        for name in ("threshold", "lower", "upper"):
            value = getattr(c, name)
            if value is not None and value < 0:
                yield Problem(rule.id, f"condition.{name}", f"a {what} cannot be negative")
    complete = len(c.bounds()) == (2 if c.comparison is Comparison.BETWEEN else 1)
    if complete and not c.interval().intersects(possible):
        yield Problem(rule.id, "condition", f"can never match {what}")


def _scope(rule: Rule) -> Iterator[Problem]:
    s = rule.scope
    kind = _SINGULAR.get(s.kind, s.kind)
    allowed = CATALOGUE[rule.metric].scopes
    if kind not in allowed:
        kinds = ", ".join(sorted(allowed))
        yield Problem(rule.id, "scope.kind", f"{rule.metric} is read per {kinds}, not per {kind}")
    plural = s.kind in _SINGULAR
    if s.kind is ScopeKind.GLOBAL:
        for name in ("name", "names"):
            if getattr(s, name) is not None:
                yield Problem(rule.id, f"scope.{name}", "not used with kind 'global'")
        return
    need, spare = ("names", "name") if plural else ("name", "names")
    if getattr(s, need) in (None, (), ""):
        yield Problem(rule.id, f"scope.{need}", f"required with kind '{s.kind}'")
    if getattr(s, spare) is not None:
        yield Problem(rule.id, f"scope.{spare}", f"not used with kind '{s.kind}' (use '{need}')")
    names = s.names_given()
    field = "scope.names" if plural else "scope.name"
    for i, name in enumerate(names):
        at = f"{field}[{i}]" if plural else field
        if s.is_category() and name not in set(EndpointCategory):
            known = ", ".join(c.value for c in EndpointCategory)
            yield Problem(rule.id, at, f"unknown endpoint category '{name}' (known: {known})")
        elif not name.strip():
            yield Problem(rule.id, at, "empty name")
        elif name in names[:i]:
            yield Problem(rule.id, at, f"'{name}' is listed twice")


def _baseline_ref(policy: Policy, rule: Rule) -> Iterator[Problem]:
    ref = rule.condition.baseline
    if ref is None:
        return
    known = {b.id: b for b in policy.baselines}
    if ref not in known:
        defined = ", ".join(known) or "none"
        yield Problem(rule.id, "condition.baseline", f"no baseline '{ref}' (defined: {defined})")
    elif known[ref].metric != rule.metric:
        yield Problem(
            rule.id,
            "condition.baseline",
            f"baseline '{ref}' measures {known[ref].metric}, not {rule.metric}",
        )


def _action(rule: Rule) -> Iterator[Problem]:
    if rule.action.needs_deadline and rule.deadline_s is None:
        yield Problem(rule.id, "deadline_s", f"required with action '{rule.action}'")
    if not rule.action.needs_deadline and rule.deadline_s is not None:
        yield Problem(rule.id, "deadline_s", f"not used with action '{rule.action}'")


def _restatement(policy: Policy, row: Rule) -> Iterator[Problem]:
    if row.same_as is None:
        return
    triggers = {t.id: t for t in policy.triggers}
    if row.same_as not in triggers:
        yield Problem(row.id, "same_as", f"no trigger '{row.same_as}'")
        return
    trigger = triggers[row.same_as]
    for name in _RESTATED:
        mine, theirs = getattr(row, name), getattr(trigger, name)
        if mine != theirs:
            yield Problem(
                row.id,
                name,
                f"contradicts trigger '{trigger.id}' ({_show(mine)} vs {_show(theirs)}); "
                "resolve it in both and say how under 'resolution'",
            )


def _show(value: object) -> str:
    if hasattr(value, "model_dump"):
        dumped = value.model_dump(exclude_defaults=True, mode="json")
        return ", ".join(f"{k}={v}" for k, v in dumped.items())
    return str(value)


def _ladders(rules: tuple[Rule, ...]) -> Iterator[Problem]:
    """Rules on one metric, scope and basis: bands must not clash; none may be dead."""
    for a, b in combinations(rules, 2):
        same_basis = a.metric == b.metric and a.condition.baseline == b.condition.baseline
        if not same_basis or not set(a.scopes()) & set(b.scopes()):
            continue
        ia, ib = a.condition.interval(), b.condition.interval()
        banded = Comparison.BETWEEN in (a.condition.comparison, b.condition.comparison)
        if a.action != b.action and banded and ia.intersects(ib):
            yield Problem(
                b.id,
                "condition",
                f"overlaps '{a.id}' on {b.metric} with a different action "
                f"({b.action} vs {a.action})",
            )
            continue
        strong, weak = (a, b) if a.action.rank >= b.action.rank else (b, a)
        i_strong, i_weak = (ia, ib) if strong is a else (ib, ia)
        comparable = strong.window_s == weak.window_s and strong.sustained_s is None
        comparable = comparable and strong.min_samples <= weak.min_samples
        comparable = comparable and set(weak.scopes()) <= set(strong.scopes())
        if strong.action.rank > weak.action.rank and comparable and i_strong.covers(i_weak):
            yield Problem(
                weak.id,
                "condition",
                f"can never decide: '{strong.id}' ({strong.action}) matches every value "
                "this rule matches",
            )
