"""What the evaluator reads and what it decides: readings, the source protocol, decisions.

A ``ReadingSource`` answers one question: the value of a metric (a name from
``metrics.Metric``) at a concrete ``Scope`` over the ``window_s`` seconds ending at ``now``,
and how many samples back it. A ``Decision`` is one timestamped verdict of one rule at one
scope; reports and the monitor's journal are views of a list of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from rollback_drill._policy_model import Action, Comparison, Severity
from rollback_drill.metrics import Metric, Scope

__all__ = ["Decision", "DecisionKind", "Reading", "ReadingSource"]


@dataclass(frozen=True)
class Reading:
    """A metric over a window: ``value`` None (or NaN) means no data.

    ``low`` and ``high``, when given, bound a sampled statistic's true value (a percentile's
    80 % interval, see ``records.WindowStats``); the evaluator judges the end of that
    interval that is better for the stack. None: the value is taken as exact."""

    value: float | None
    samples: int
    low: float | None = None
    high: float | None = None

    @property
    def has_value(self) -> bool:
        return self.value is not None and not math.isnan(self.value)


class ReadingSource(Protocol):
    def read(self, metric: str, scope: Scope, window_s: float, now: float) -> Reading: ...


class DecisionKind(StrEnum):
    ROLLBACK = "rollback"  # a rollback rule fired (immediate, or with a deadline to meet)
    DEFERRED = "deferred"  # "evaluate": a verdict due at ``deadline``
    ESCALATED = "escalated"  # a deferred verdict turned into rollback (held or worsened)
    CLEARED = "cleared"  # a deferred verdict resolved without rollback
    MONITOR = "monitor"  # informational: "monitor closely", or a rule that cannot run


@dataclass(frozen=True)
class Decision:
    """One verdict. Thresholds are effective values (baseline applied), in metric units."""

    time: float
    kind: DecisionKind
    trigger_id: str
    metric: Metric
    scope: Scope
    value: float | None
    samples: int
    comparison: Comparison
    threshold: float | None  # gt/ge/lt/le
    band: tuple[float, float] | None  # between: (lower, upper)
    baseline: float | None  # the baseline value, for relative rules
    severity: Severity
    action: Action
    deadline: float | None  # deferred: verdict due; rollback_within: rollback due
    window_s: float  # effective (time-scaled) window the value was read over
    time_scale: float
    message: str
    escalated_from: str | None = None  # the deferred rule whose verdict this escalates

    def is_rollback(self) -> bool:
        """Whether this decision calls for a rollback (the drill's rollback phases run)."""
        return self.kind in (DecisionKind.ROLLBACK, DecisionKind.ESCALATED)
