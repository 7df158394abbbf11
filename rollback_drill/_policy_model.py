"""The rollback policy's data model: enums, conditions, rules, baselines, the policy.

Strict pydantic models (unknown fields refused, enums for every closed vocabulary, positive
windows). A rule fires when its metric, read over ``window_s`` at each concrete scope,
satisfies its condition: absolute, or as factors of a captured baseline. ``time_scale``
compresses every window, sustain period, deadline and the observation window of quick
drills; counts and ratios are not scaled. Loading and the cross-entry checks live in
``policy.py`` and ``_policy_checks.py``.

Besides the triggers, the policy holds every other number of the plan a drill or the executor
judges by: the rollback phases' budgets and the success criterion (``rollback``), the
validation checklist's limits (``checklist``), and the drills' detection budgets and aimed
levels (``drills``) -- each level a function of its rule's threshold, so that a threshold
edited in the file moves the levels the drills aim at with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StringConstraints

from rollback_drill.errors import PolicyError
from rollback_drill.metrics import CATALOGUE, Metric, Scope, ScopeKind, Unit, Worse


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class Action(StrEnum):
    IMMEDIATE_ROLLBACK = "immediate_rollback"
    ROLLBACK_WITHIN = "rollback_within"  # rollback decided now, to be done by deadline_s
    EVALUATE = "evaluate"  # deferred verdict: escalates or clears by deadline_s
    MONITOR = "monitor"  # informational

    @property
    def rank(self) -> int:
        """Strength on a ladder of rules: the strongest matching rule speaks."""
        return _RANK[self]

    @property
    def is_rollback(self) -> bool:
        return self in (Action.IMMEDIATE_ROLLBACK, Action.ROLLBACK_WITHIN)

    @property
    def needs_deadline(self) -> bool:
        return self in (Action.ROLLBACK_WITHIN, Action.EVALUATE)


_RANK = {
    Action.IMMEDIATE_ROLLBACK: 3,
    Action.ROLLBACK_WITHIN: 2,
    Action.EVALUATE: 1,
    Action.MONITOR: 0,
}


class Comparison(StrEnum):
    GT = "gt"
    GE = "ge"
    LT = "lt"
    LE = "le"
    BETWEEN = "between"  # lower..upper, ends included unless include_lower/upper is false


@dataclass(frozen=True)
class Interval:
    """The set of values a condition matches; open or closed at each end."""

    low: float
    high: float
    low_closed: bool = False
    high_closed: bool = False

    def __contains__(self, value: float) -> bool:
        above = value > self.low or (self.low_closed and value == self.low)
        below = value < self.high or (self.high_closed and value == self.high)
        return above and below

    def intersects(self, other: Interval) -> bool:
        if self.low != other.low:
            low, low_closed = max((self.low, self.low_closed), (other.low, other.low_closed))
        else:
            low, low_closed = self.low, self.low_closed and other.low_closed
        if self.high != other.high:
            high, high_closed = min((self.high, self.high_closed), (other.high, other.high_closed))
        else:
            high, high_closed = self.high, self.high_closed and other.high_closed
        return low < high or (low == high and low_closed and high_closed)

    def covers(self, other: Interval) -> bool:
        low_ok = self.low < other.low or (
            self.low == other.low and (self.low_closed or not other.low_closed)
        )
        high_ok = self.high > other.high or (
            self.high == other.high and (self.high_closed or not other.high_closed)
        )
        return low_ok and high_ok

    def times(self, factor: float) -> Interval:
        """The interval with both bounds multiplied by a positive factor (a baseline)."""
        return Interval(self.low * factor, self.high * factor, self.low_closed, self.high_closed)

    def beyond(self, value: float, worse: Worse) -> bool:
        """Whether ``value`` lies past the interval on the side where the metric is worse."""
        if worse is Worse.HIGHER:
            return value > self.high or (value == self.high and not self.high_closed)
        return value < self.low or (value == self.low and not self.low_closed)


_Lax = Field(strict=False)  # YAML gives strings for enums and lists for tuples
Id = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]
Text = Annotated[str, StringConstraints(min_length=1)]
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Number = Annotated[float, Field(allow_inf_nan=False)]
Count = Annotated[int, Field(ge=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ScopeSpec(_Model):
    """Where a rule reads its metric; ``categories``/``services`` mean each one separately."""

    kind: Annotated[ScopeKind, _Lax]
    name: str | None = None
    names: Annotated[tuple[str, ...] | None, _Lax] = None

    def expand(self) -> tuple[Scope, ...]:
        if self.kind is ScopeKind.GLOBAL:
            return (Scope.everywhere(),)
        if self.kind is ScopeKind.CATEGORY and self.name is not None:
            return (Scope.category(self.name),)
        if self.kind is ScopeKind.SERVICE and self.name is not None:
            return (Scope.service(self.name),)
        if self.kind is ScopeKind.CATEGORIES:
            return tuple(Scope.category(n) for n in self.names or ())
        return tuple(Scope.service(n) for n in self.names or ())

    def names_given(self) -> tuple[str, ...]:
        return (self.name,) if self.name is not None else (self.names or ())

    def is_category(self) -> bool:
        return self.kind in (ScopeKind.CATEGORY, ScopeKind.CATEGORIES)


class Condition(_Model):
    """``comparison`` against ``threshold``, or ``between`` ``lower`` and ``upper``.

    With ``baseline`` (a baseline id) the numbers are factors of that baseline's value.
    """

    comparison: Annotated[Comparison, _Lax]
    threshold: Number | None = None
    lower: Number | None = None
    upper: Number | None = None
    include_lower: bool = True
    include_upper: bool = True
    baseline: Id | None = None

    def interval(self) -> Interval:
        """Matching values (factors of the baseline when relative); call once validated."""
        inf = math.inf
        t = self.threshold if self.threshold is not None else math.nan
        match self.comparison:
            case Comparison.GT:
                return Interval(t, inf)
            case Comparison.GE:
                return Interval(t, inf, low_closed=True)
            case Comparison.LT:
                return Interval(-inf, t)
            case Comparison.LE:
                return Interval(-inf, t, high_closed=True)
        low = self.lower if self.lower is not None else math.nan
        high = self.upper if self.upper is not None else math.nan
        return Interval(low, high, self.include_lower, self.include_upper)

    def bounds(self) -> tuple[float, ...]:
        given = (self.threshold, self.lower, self.upper)
        return tuple(v for v in given if v is not None)


class Rule(_Model):
    """One trigger of the plan or one row of its decision matrix."""

    id: Id
    plan: Text  # the plan's own words this rule implements
    metric: Annotated[Metric, _Lax]
    scope: ScopeSpec
    window_s: Seconds
    min_samples: Count
    condition: Condition
    sustained_s: Seconds | None = None  # the condition must hold on every tick for this long
    severity: Annotated[Severity, _Lax]
    action: Annotated[Action, _Lax]
    deadline_s: Seconds | None = None  # rollback_within: rollback by; evaluate: verdict by
    same_as: Id | None = None  # matrix row restating a trigger: evaluated once, as that one
    resolution: Text | None = None  # how the plan's ambiguity here was resolved

    @property
    def worse(self) -> Worse:
        return CATALOGUE[self.metric].worse

    def scopes(self) -> tuple[Scope, ...]:
        return self.scope.expand()


class BaselineSpec(_Model):
    """A metric captured once (pre-hybrid, before any fault) for relative thresholds."""

    id: Id
    metric: Annotated[Metric, _Lax]
    window_s: Seconds
    min_samples: Count
    description: Text


class Ambiguity(_Model):
    """Where the plan contradicts itself or is silent, and what this policy does about it."""

    id: Id
    topic: Text
    plan_says: Text
    resolution: Text
    entries: Annotated[tuple[Id, ...], _Lax] = ()


class PhaseBudget(_Model):
    """One rollback phase's time budget, as the plan's heading gives it."""

    phase: Annotated[int, Field(ge=1, le=5)]
    plan: Text  # the plan's heading with its budget
    budget_s: Seconds
    goal_s: Seconds | None = None  # the suite's goal on a warm machine: reported, not asserted


class RollbackSpec(_Model):
    """The rollback's clock: the phases' budgets, the success criterion, the announcement."""

    success_criterion_s: Seconds  # "Rollback completes in < 5 minutes" (strict)
    success_criterion_plan: Text  # also the announcement's "Expected completion: [TIME + 5 min]"
    status_update_interval_s: Seconds  # the announcement's "Status updates: Every 5 minutes"
    announcement_plan: Text
    phases: Annotated[tuple[PhaseBudget, ...], _Lax, Field(min_length=5, max_length=5)]

    def phase(self, number: int) -> PhaseBudget:
        for p in self.phases:
            if p.phase == number:
                return p
        raise KeyError(number)


class P95Check(_Model):
    """ "P95 latency back to baseline": not past ``rule``'s factor of its baseline."""

    plan: Text
    rule: Id
    category: Annotated[str, StringConstraints(min_length=1)]
    min_requests: Count  # fewer requests in a part: no evidence, the part counts as above
    parts: Count  # the observation period is judged in this many parts (a majority decides)
    # when most parts are above, up to this many more are observed, the latest ``parts`` judged
    more_parts: Annotated[int, Field(ge=0)] = 0


class ChecklistSpec(_Model):
    """The Rollback Validation Checklist's limits and the period it observes."""

    plan: Text
    max_error_rate: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]  # strict "<"
    error_rate_plan: Text
    min_requests: Count  # fewer requests: the error-rate item has no evidence and fails
    p95: P95Check
    max_log_errors: Annotated[int, Field(ge=0)]  # "No error spikes in logs": at most this many
    log_error_pattern: Annotated[str, StringConstraints(min_length=1)]
    log_plan: Text
    settle_s: Seconds  # after the rollback, before the checklist observes (time-scaled)
    min_settle_s: Seconds  # ... but never shorter than this
    observe_s: Seconds  # the period the checklist observes (time-scaled)
    min_observe_s: Seconds
    period_plan: Text


class DetectBudget(_Model):
    """A drill's budget from the fault to ``rule``'s decision, when it is not the rule's
    (scaled) window + sustain period + ``detect_slack_s``: a fixed ``budget_s`` (rules whose
    window is not what bounds detection), or another ``slack_s`` (a fault's own ramp)."""

    id: Id
    rule: Id
    budget_s: Seconds | None = None
    slack_s: Seconds | None = None
    why: Text


class Level(_Model):
    """Where a drill aims its fault for ``rule``, computed from the rule's threshold:
    ``factor`` x threshold, threshold + ``offset``, or ``position`` of the way through the
    band (the rule's own ``between`` bounds, its threshold up to ``up_to``'s threshold, or
    for a ratio its threshold up to 1).
    ``expect``: whether the level is one the rule matches (``fires``) or not (``quiet``);
    the loader checks it is."""

    id: Id
    rule: Id
    factor: Number | None = None
    offset: Number | None = None
    position: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] | None = None
    up_to: Id | None = None
    expect: Literal["fires", "quiet"]
    plan: Text


Share = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]


class LevelTolerance(_Model):
    """How far a fault's measured level may be from the level it aims at before the drill says
    the fault missed: nginx's measurement of a P95 multiple (relative to the aim) and of an
    error share (absolute points); the monitor's reading of other levels (absolute points for
    ratios, or relative, the larger)."""

    p95_relative: Share
    error_share_points: Share
    reading_points: Share
    reading_relative: Share
    why: Text


class DrillSpec(_Model):
    """The drills' detection budgets, aimed levels and how close a level must come to its aim;
    how long they watch and wait, and how a slow release slows."""

    detect_slack_s: Seconds  # the monitor's tick, the collectors' sampling, the fault's ramp
    quiet_slack_s: Seconds  # a "nothing fired" watch: two windows + sustain (scaled) + this
    decision_wait_s: Seconds  # plan time (scaled) a whole drill waits for its rollback decision
    decision_slack_s: Seconds  # ... plus this, unscaled
    p95_band_samples: Count  # requests of the category in one window of a P95 band drill
    slowed_share: Share  # the share of a category's requests a slow release delays
    writes_after_rollback: Count  # writes the load must get acknowledged after a rollback ...
    writes_after_rollback_timeout_s: Seconds  # ... within this (unscaled)
    detection: Annotated[tuple[DetectBudget, ...], _Lax] = ()
    levels: Annotated[tuple[Level, ...], _Lax] = ()
    level_tolerance: LevelTolerance


@dataclass(frozen=True)
class RuleTiming:
    """A rule's windows and deadline as the plan gives them and as a drill applies them."""

    rule_id: str
    window_s: float
    effective_window_s: float
    sustained_s: float | None
    effective_sustained_s: float | None
    deadline_s: float | None
    effective_deadline_s: float | None


class Policy(_Model):
    version: Literal[1]
    plan: Text
    observation_window_s: Seconds  # "within 2 hours of deployment"
    time_scale: Annotated[float, Field(ge=1, allow_inf_nan=False)] = 1.0
    baseline_min_window_s: Seconds = 24.0  # a time scale shortens no baseline window below this
    baselines: Annotated[tuple[BaselineSpec, ...], _Lax] = ()
    ambiguities: Annotated[tuple[Ambiguity, ...], _Lax] = ()
    triggers: Annotated[tuple[Rule, ...], _Lax, Field(min_length=1)]
    matrix: Annotated[tuple[Rule, ...], _Lax] = ()
    rollback: RollbackSpec
    checklist: ChecklistSpec
    drills: DrillSpec
    _source: str = PrivateAttr(default="<policy>")

    @property
    def source(self) -> str:
        """The file this policy came from (for messages and reports)."""
        return self._source

    def entries(self) -> tuple[Rule, ...]:
        """Every trigger and matrix row, as written."""
        return self.triggers + self.matrix

    def rules(self) -> tuple[Rule, ...]:
        """The rules the evaluator runs: triggers and the matrix rows that are not restatements."""
        return self.triggers + tuple(r for r in self.matrix if r.same_as is None)

    def rule(self, rule_id: str) -> Rule:
        for rule in self.entries():
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    def baseline(self, baseline_id: str) -> BaselineSpec:
        for spec in self.baselines:
            if spec.id == baseline_id:
                return spec
        raise KeyError(baseline_id)

    def scale(self, seconds: float) -> float:
        """A plan duration compressed by the time-scale factor."""
        return seconds / self.time_scale

    def baseline_window_s(self, baseline_id: str) -> float:
        """The window a baseline is read over: its window time-scaled, but not shorter than
        ``baseline_min_window_s`` (nor longer than unscaled).

        A baseline is a reference sample, not a detection window: compressing it only shortens
        the time before the fault, and it costs accuracy. At time scale 10 the 12 s CRUD P95
        baseline (~290 requests) ranged from 12 to 21 ms between runs of the same stack, which
        put a 1.75x slow release above 2x, and auth and admin got 27 requests (< 40): no
        baseline at all. 24 s gives ~580 CRUD and ~55 auth and admin requests at 40 req/s."""
        window = self.baseline(baseline_id).window_s
        return min(window, max(self.scale(window), self.baseline_min_window_s))

    def longest_baseline_window_s(self) -> float:
        return max(self.baseline_window_s(b.id) for b in self.baselines)

    def from_file(self, label: str) -> Policy:
        """This policy, remembering the file it was read from."""
        copy = self.model_copy()
        copy._source = label
        return copy

    def scaled(self, time_scale: float) -> Policy:
        """This policy with another time-scale factor (a finite number >= 1)."""
        if isinstance(time_scale, bool) or not math.isfinite(time_scale) or time_scale < 1:
            raise PolicyError(
                f"{self.source}: field 'time_scale': must be a finite number >= 1, "
                f"got {time_scale!r}"
            )
        copy = self.model_copy(update={"time_scale": float(time_scale)})
        copy._source = self._source
        return copy

    # ---- the numbers besides the triggers ----------------------------------------------------
    def phase_budget_s(self, phase: int) -> float:
        """The plan's budget of a rollback phase (never time-scaled: a rollback runs in real
        time whatever the drill's compression)."""
        try:
            return self.rollback.phase(phase).budget_s
        except KeyError:
            raise PolicyError(f"{self.source}: no rollback phase {phase} (phases 1-5)") from None

    def sequence_budget_s(self, phases: tuple[int, ...] | list[int]) -> float:
        """The budget of a phase sequence: the sum of its phases' budgets."""
        return sum(self.phase_budget_s(p) for p in phases)

    def status_update_interval_s(self) -> float:
        """The announcement's status-update interval, time-scaled like the drill."""
        return self.scale(self.rollback.status_update_interval_s)

    def checklist_period_s(self) -> tuple[float, float]:
        """(settle, observe): how long after a rollback the checklist waits, then observes --
        time-scaled, but not below their floors."""
        c = self.checklist
        return max(self.scale(c.settle_s), c.min_settle_s), max(
            self.scale(c.observe_s), c.min_observe_s
        )

    def detect_budget_s(self, rule_id: str, case: str | None = None) -> float:
        """A drill's budget from the fault to ``rule_id``'s decision: its (scaled) window and
        sustain period plus the slack, unless ``drills.detection`` has an entry ``case`` (or,
        without ``case``, one whose id is the rule's) that fixes it or changes the slack."""
        rule = self.rule(rule_id)
        key = case or rule_id
        spec = next((d for d in self.drills.detection if d.id == key), None)
        if case is not None and spec is None:
            raise PolicyError(f"{self.source}: no drills.detection entry '{case}'")
        if spec is not None and spec.rule != rule_id:
            raise PolicyError(
                f"{self.source}: drills.detection '{key}' is for {spec.rule}, not {rule_id}"
            )
        if spec is not None and spec.budget_s is not None:
            return spec.budget_s
        slack = spec.slack_s if spec is not None and spec.slack_s is not None else None
        return (
            self.scale(rule.window_s)
            + self.scale(rule.sustained_s or 0)
            + (self.drills.detect_slack_s if slack is None else slack)
        )

    def quiet_period_s(self, rule_id: str) -> float:
        """How long a drill watches that ``rule_id`` does not fire: two of its (scaled) windows
        and its sustain period, plus ``drills.quiet_slack_s`` for the first samples."""
        rule = self.rule(rule_id)
        return (
            2 * self.scale(rule.window_s)
            + self.scale(rule.sustained_s or 0)
            + self.drills.quiet_slack_s
        )

    def decision_wait_s(self) -> float:
        """How long a whole drill waits for its rollback decision: ``drills.decision_wait_s``
        (plan time, scaled) plus ``drills.decision_slack_s``."""
        return self.scale(self.drills.decision_wait_s) + self.drills.decision_slack_s

    def level_spec(self, level_id: str) -> Level:
        for spec in self.drills.levels:
            if spec.id == level_id:
                return spec
        raise PolicyError(f"{self.source}: no drills.levels entry '{level_id}'")

    def level(self, level_id: str) -> float:
        """The level a drill aims at (``drills.levels``), in the rule's units (factors of the
        baseline for a relative rule), computed from the rule's threshold."""
        spec = self.level_spec(level_id)
        return level_of(spec, self.rule(spec.rule), self.rule(spec.up_to) if spec.up_to else None)

    def timings(self) -> tuple[RuleTiming, ...]:
        def scaled(v: float | None) -> float | None:
            return None if v is None else self.scale(v)

        return tuple(
            RuleTiming(
                r.id,
                r.window_s,
                self.scale(r.window_s),
                r.sustained_s,
                scaled(r.sustained_s),
                r.deadline_s,
                scaled(r.deadline_s),
            )
            for r in self.rules()
        )


def level_of(spec: Level, rule: Rule, up_to: Rule | None) -> float:
    """``spec``'s level for ``rule`` (and the rung above it, ``up_to``)."""
    cond = rule.condition
    if spec.position is not None:
        if up_to is not None:
            low, high = cond.threshold, up_to.condition.threshold
        elif cond.comparison is Comparison.BETWEEN:
            low, high = cond.lower, cond.upper
        elif CATALOGUE[rule.metric].unit is Unit.RATIO and cond.baseline is None:
            low, high = cond.threshold, 1.0  # from the threshold to the ratio's end
        else:
            low = high = None
        if low is None or high is None:
            raise PolicyError(f"level '{spec.id}': {rule.id} has no band to take a position in")
        return low + spec.position * (high - low)
    base = cond.threshold
    if base is None:
        raise PolicyError(f"level '{spec.id}': {rule.id} has no single threshold")
    if spec.factor is not None:
        return base * spec.factor
    return base + (spec.offset or 0.0)
