"""The rollback policy's data model: enums, conditions, rules, baselines, the policy.

Strict pydantic models (unknown fields refused, enums for every closed vocabulary, positive
windows). A rule fires when its metric, read over ``window_s`` at each concrete scope,
satisfies its condition: absolute, or as factors of a captured baseline. ``time_scale``
compresses every window, sustain period, deadline and the observation window of quick
drills; counts and ratios are not scaled. Loading and the cross-entry checks live in
``policy.py`` and ``_policy_checks.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StringConstraints

from rollback_drill.errors import PolicyError
from rollback_drill.metrics import CATALOGUE, Metric, Scope, ScopeKind, Worse


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
