"""The evaluator: turns readings into decisions, one tick at a time (pure: no I/O, no clock).

``Evaluator.tick(now, source)`` reads every rule's metric at each of its scopes and returns
the decisions that this tick makes. Semantics (the policy file's header says the same):

- too few samples, or no value: no decision, and no change of state;
- rules on one metric, scope and basis form a *ladder*; the strongest matching action
  speaks (immediate_rollback > rollback_within > evaluate > monitor), weaker ones wait;
- a rule fires once per episode and re-arms silently when its condition stops holding;
- ``evaluate`` opens a deferred verdict due at ``now + deadline``: it escalates to rollback
  if the condition still holds at the deadline, or at once if the value worsens into a
  rollback rung of its ladder; it emits ``cleared`` when a reading no longer holds;
- a rollback decision covers the rest of its ladder's episode: weaker rungs stay silent
  until the value has left their band;
- ``sustained_s``: the condition must have matched on every tick for that long;
- a relative rule whose baseline is unusable at a scope does not run there; the first
  tick says so with one ``monitor`` decision;
- new episodes start only within the observation window after ``deployed_at``;
- a reading of a sampled percentile carries its 80 % interval; its condition holds only when
  the interval's better end does (the lower end where higher is worse): a P95 over 120 auth
  requests moves by a third between windows of a healthy stack, and a rule must not fire on
  that. Decisions still report the point value (and the interval in their message).
Values are compared exactly: at a ``gt`` threshold nothing fires.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from rollback_drill._policy_model import Action, Comparison, Interval, Policy, Rule
from rollback_drill.baseline import Baseline
from rollback_drill.decisions import Decision, DecisionKind, Reading, ReadingSource
from rollback_drill.metrics import Metric, Scope, Worse, format_value

__all__ = ["Evaluator", "RuleStatus"]


class _Phase(StrEnum):
    ARMED = "armed"
    ACTIVE = "active"  # fired (rollback or monitor); silent until the condition clears
    DEFERRED = "deferred"  # verdict pending
    COVERED = "covered"  # a rollback decision covers this episode
    DISABLED = "disabled"  # baseline unusable


@dataclass
class _State:
    rule: Rule
    scope: Scope
    base: float | None  # the baseline value for relative rules
    phase: _Phase = _Phase.ARMED
    since: float | None = None  # when the condition began matching (sustained rules)
    deadline: float | None = None
    reading: Reading | None = None

    @property
    def interval(self) -> Interval:
        interval = self.rule.condition.interval()
        return interval if self.base is None else interval.times(self.base)


@dataclass(frozen=True)
class _View:
    """One rule at one scope on this tick."""

    state: _State
    known: bool  # enough samples and a value
    raw: bool  # the condition matches this reading
    matched: bool  # ... and has been for the sustain period
    holds: bool  # matches, or is beyond the band on the worse side


@dataclass(frozen=True)
class RuleStatus:
    """A rule at one scope right now, for a live view."""

    rule_id: str
    scope: Scope
    metric: Metric
    value: float | None
    samples: int
    condition: str
    state: str
    deadline: float | None


class Evaluator:
    """Runs a policy against readings; keeps each rule's episode state between ticks.

    ``deployed_at`` starts the observation window (default: the first tick's ``now``).
    Time scaling comes from ``policy.time_scale`` (see ``Policy.scaled``).
    """

    def __init__(
        self, policy: Policy, baseline: Baseline, *, deployed_at: float | None = None
    ) -> None:
        self.policy = policy
        self.deployed_at = deployed_at
        self._last: float | None = None
        self._ladders: dict[tuple[Metric, Scope, str | None], list[_State]] = {}
        for rule in policy.rules():
            for scope in rule.scopes():
                ref = rule.condition.baseline
                state = _State(rule, scope, None)
                if ref is not None:
                    value = baseline.get(ref, scope)
                    usable = value is not None and value.usable
                    state.base = value.value if value is not None and usable else None
                    state.phase = _Phase.ARMED if usable else _Phase.DISABLED
                self._ladders.setdefault((rule.metric, scope, ref), []).append(state)
        for ladder in self._ladders.values():
            ladder.sort(key=lambda s: -s.rule.action.rank)
        self._baseline = baseline

    @property
    def time_scale(self) -> float:
        return self.policy.time_scale

    def tick(self, now: float, source: ReadingSource) -> list[Decision]:
        if self._last is not None and now < self._last:
            raise ValueError(f"tick at {now} is before the previous tick at {self._last}")
        decisions = [] if self._last is not None else self._announce(now)
        self._last = now
        if self.deployed_at is None:
            self.deployed_at = now
        window = self.policy.scale(self.policy.observation_window_s)
        observing = now <= self.deployed_at + window
        cache: dict[tuple[Metric, Scope, float], Reading] = {}

        def read(state: _State) -> Reading:
            key = (state.rule.metric, state.scope, self.policy.scale(state.rule.window_s))
            if key not in cache:
                cache[key] = source.read(key[0], key[1], key[2], now)
            return cache[key]

        for ladder in self._ladders.values():
            decisions += self._step(ladder, now, read, observing)
        return decisions

    def status(self) -> tuple[RuleStatus, ...]:
        out = []
        for ladder in self._ladders.values():
            for s in ladder:
                r = s.reading or Reading(None, 0)
                cond = _condition(s) if s.phase is not _Phase.DISABLED else "baseline unusable"
                out.append(
                    RuleStatus(
                        s.rule.id,
                        s.scope,
                        s.rule.metric,
                        r.value,
                        r.samples,
                        cond,
                        s.phase.value,
                        s.deadline,
                    )
                )
        return tuple(out)

    def _announce(self, now: float) -> list[Decision]:
        out = []
        for ladder in self._ladders.values():
            for s in ladder:
                if s.phase is _Phase.DISABLED:
                    ref = s.rule.condition.baseline or ""
                    value = self._baseline.get(ref, s.scope)
                    why = value.problem if value is not None else "not captured"
                    text = f"not evaluated: baseline '{ref}' {why}"
                    out.append(self._decision(s, now, DecisionKind.MONITOR, text))
        return out

    def _step(
        self, ladder: list[_State], now: float, read: Callable[[_State], Reading], observing: bool
    ) -> list[Decision]:
        views = [self._view(s, now, read(s)) for s in ladder if s.phase is not _Phase.DISABLED]
        top = max((v.state.rule.action.rank for v in views if v.matched), default=None)
        out: list[Decision] = []
        for v in views:  # strongest rung first
            s = v.state
            if s.phase is _Phase.ARMED:
                if v.matched and observing and s.rule.action.rank == top:
                    out.append(self._fire(s, views, now))
            elif not v.known:
                continue  # no evidence either way: keep the state
            elif s.phase in (_Phase.ACTIVE, _Phase.COVERED):
                if not (v.raw if s.phase is _Phase.ACTIVE else v.holds):
                    s.phase = _Phase.ARMED  # the episode is over: re-arm silently
            elif not v.holds:  # a deferred verdict
                s.phase, s.deadline = _Phase.ARMED, None
                text = "no longer holds: deferred verdict cleared, no rollback"
                out.append(self._decision(s, now, DecisionKind.CLEARED, text))
            elif now >= (s.deadline or now):
                _cover(views, s)
                s.phase, s.deadline = _Phase.COVERED, None
                text = "still holds at the verdict's deadline: rollback"
                out.append(self._decision(s, now, DecisionKind.ESCALATED, text))
        return out

    def _view(self, s: _State, now: float, reading: Reading) -> _View:
        s.reading = reading
        known = reading.has_value and reading.samples >= s.rule.min_samples
        value = reading.value if known and reading.value is not None else 0.0
        bound = reading.low if s.rule.worse is Worse.HIGHER else reading.high
        if known and bound is not None:
            value = bound  # a sampled percentile: judged by its interval's better end
        interval = s.interval
        raw = known and value in interval
        holds = raw or (known and interval.beyond(value, s.rule.worse))
        s.since = (s.since if s.since is not None else now) if raw else None
        sustain = self.policy.scale(s.rule.sustained_s or 0.0)
        matched = raw and s.since is not None and now - s.since >= sustain
        return _View(s, known, raw, matched, holds)

    def _fire(self, s: _State, views: list[_View], now: float) -> Decision:
        action = s.rule.action
        due = now + self.policy.scale(s.rule.deadline_s or 0.0)
        if action is Action.EVALUATE:
            s.phase, s.deadline = _Phase.DEFERRED, due
            text = f"evaluate: verdict due in {due - now:g} s (t={due:g})"
            return self._decision(s, now, DecisionKind.DEFERRED, text, deadline=due)
        if action is Action.MONITOR:
            s.phase = _Phase.ACTIVE
            return self._decision(s, now, DecisionKind.MONITOR, "monitor closely")
        pending = [v.state for v in views if v.state.phase is _Phase.DEFERRED and v.holds]
        _cover(views, s)
        s.phase = _Phase.ACTIVE
        if action is Action.ROLLBACK_WITHIN:
            s.deadline = due
            text = f"rollback within {due - now:g} s (by t={due:g})"
        else:
            text = "immediate rollback"
        if not pending:
            return self._decision(s, now, DecisionKind.ROLLBACK, text, deadline=s.deadline)
        origin = pending[0].rule.id
        text += f", escalating the deferred verdict of {origin}"
        return self._decision(
            s, now, DecisionKind.ESCALATED, text, deadline=s.deadline, escalated_from=origin
        )

    def _decision(
        self,
        s: _State,
        now: float,
        kind: DecisionKind,
        what: str,
        *,
        deadline: float | None = None,
        escalated_from: str | None = None,
    ) -> Decision:
        rule, r = s.rule, s.reading or Reading(None, 0)
        c, base = rule.condition, s.base or 1.0
        window = self.policy.scale(rule.window_s)
        if s.phase is _Phase.DISABLED:
            message = f"{rule.id} at {s.scope}: {what} [{rule.severity}]"
        else:
            message = (
                f"{rule.id} at {s.scope}: {format_value(rule.metric, r.value)} "
                f"(condition {_condition(s)}, {window:g} s window, {r.samples} samples"
                f"{_interval_text(rule.metric, r)})"
                f" -> {what} [{rule.severity}]"
            )
        band = None
        if c.comparison is Comparison.BETWEEN and c.lower is not None and c.upper is not None:
            band = (c.lower * base, c.upper * base)
        return Decision(
            time=now,
            kind=kind,
            trigger_id=rule.id,
            metric=rule.metric,
            scope=s.scope,
            value=r.value,
            samples=r.samples,
            comparison=c.comparison,
            threshold=None if c.threshold is None else c.threshold * base,
            band=band,
            baseline=s.base,
            severity=rule.severity,
            action=rule.action,
            deadline=deadline,
            window_s=window,
            time_scale=self.policy.time_scale,
            message=message,
            escalated_from=escalated_from,
        )


def _cover(views: list[_View], by: _State) -> None:
    """A rollback decision by ``by``: the ladder's other held rules join its episode."""
    for v in views:
        if v.state is not by and v.holds:
            v.state.phase, v.state.deadline = _Phase.COVERED, None


def _condition(s: _State) -> str:
    """The condition in metric units, e.g. '> 10 %' or '> 200 ms (2x baseline 100 ms)'."""
    c, metric = s.rule.condition, s.rule.metric
    i = s.interval
    if c.comparison is Comparison.BETWEEN:
        left, right = "[" if i.low_closed else "(", "]" if i.high_closed else ")"
        text = f"in {left}{format_value(metric, i.low)}, {format_value(metric, i.high)}{right}"
    else:
        op = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}[c.comparison]
        bound = i.low if c.comparison in (Comparison.GT, Comparison.GE) else i.high
        text = f"{op} {format_value(metric, bound)}"
    if s.base is not None:
        factors = "-".join(f"{f:g}x" for f in c.bounds())
        text += f", {factors} baseline {format_value(metric, s.base)}"
    return text


def _interval_text(metric: Metric, r: Reading) -> str:
    if r.low is None or r.high is None:
        return ""
    return f", 80 % interval {format_value(metric, r.low)}-{format_value(metric, r.high)}"
