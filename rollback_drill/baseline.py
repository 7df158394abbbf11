"""The baseline: metric values captured once, before the change, for relative thresholds.

One value per (baseline id, concrete scope) that a relative rule of the policy needs,
either read from a ``ReadingSource`` over the baseline's (time-scaled) window, or given as
a mapping. A value that is missing, backed by too few samples, or not above zero is kept
with its ``problem``: rules relative to it cannot run at that scope (a multiple of zero
would fire on any value, or never), and the evaluator announces that instead of guessing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rollback_drill._policy_model import Policy
from rollback_drill.decisions import ReadingSource
from rollback_drill.metrics import Scope

__all__ = ["Baseline", "BaselineValue"]


@dataclass(frozen=True)
class BaselineValue:
    baseline_id: str
    scope: Scope
    value: float | None
    samples: int | None  # None when given rather than measured
    problem: str | None  # why it cannot be used; None when usable

    @property
    def usable(self) -> bool:
        return self.problem is None


class Baseline:
    def __init__(self, values: Iterable[BaselineValue]) -> None:
        self._values = {(v.baseline_id, v.scope): v for v in values}

    @classmethod
    def capture(cls, policy: Policy, source: ReadingSource, now: float) -> Baseline:
        """Read every needed baseline over its window ending at ``now``."""
        values = []
        for baseline_id, scope in needed(policy):
            spec = policy.baseline(baseline_id)
            window_s = policy.baseline_window_s(baseline_id)
            reading = source.read(spec.metric, scope, window_s, now)
            value = reading.value if reading.has_value else None
            problem = _problem(value)
            if problem is None and reading.samples < spec.min_samples:
                problem = f"too few samples ({reading.samples} < {spec.min_samples})"
            values.append(BaselineValue(baseline_id, scope, value, reading.samples, problem))
        return cls(values)

    @classmethod
    def from_mapping(
        cls, policy: Policy, given: Mapping[tuple[str, Scope], float | None]
    ) -> Baseline:
        """Baseline values given by (baseline id, scope); the ones not given are missing."""
        known = {spec.id for spec in policy.baselines}
        for baseline_id, _ in given:
            if baseline_id not in known:
                raise ValueError(f"no baseline '{baseline_id}' in the policy")
        values = []
        for key in needed(policy):
            value = given.get(key)
            if value is not None and math.isnan(value):
                value = None
            problem = _problem(value) if key in given else "not given"
            values.append(BaselineValue(key[0], key[1], value, None, problem))
        return cls(values)

    def get(self, baseline_id: str, scope: Scope) -> BaselineValue | None:
        return self._values.get((baseline_id, scope))

    def values(self) -> tuple[BaselineValue, ...]:
        return tuple(self._values.values())

    def problems(self) -> tuple[str, ...]:
        """One line per baseline value that cannot be used."""
        return tuple(
            f"baseline '{v.baseline_id}' at {v.scope}: {v.problem}"
            for v in self._values.values()
            if v.problem is not None
        )


def needed(policy: Policy) -> tuple[tuple[str, Scope], ...]:
    """Every (baseline id, scope) that a relative rule of the policy reads against."""
    keys: dict[tuple[str, Scope], None] = {}
    for rule in policy.rules():
        if rule.condition.baseline is not None:
            for scope in rule.scopes():
                keys[(rule.condition.baseline, scope)] = None
    return tuple(keys)


def _problem(value: float | None) -> str | None:
    if value is None:
        return "no data"
    if value <= 0:
        return f"is {value:g}, not above zero: no multiple of it is a threshold"
    return None
