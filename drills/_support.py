"""What the drills share, one concept a module -- this module only gathers them:

=================  ==========================================================================
``_verdicts``      the plan's verdict per trigger (``PLAN``), ``RecordProperty``
``_detection``     waiting for a decision, time to detect, detection budgets, no decision
``_baselines``     a settled baseline, its histogram and values
``_levels``        the slow release; a fault's level against its aim (nginx, the monitor)
``_observability`` "not observable on this target"
``_rollback``      the chosen phases, the executor, the checklist after it
=================  ==========================================================================
"""

from __future__ import annotations

from ._baselines import (
    baseline_histogram,
    baseline_value,
    settled_baseline,
)
from ._detection import (
    Detection,
    FirstAnswer,
    assert_no_decision,
    detect,
    faulty_release,
    hybrid,
    origin_of,
    scale_budget,
    sleep_until,
    window,
)
from ._levels import (
    SlowRelease,
    check_aimed_level,
    check_level,
    slow_release,
    steady_reading,
)
from ._observability import (
    not_observable,
    observability_gap,
)
from ._rollback import (
    chosen_phases,
    execute_rollback,
    verify_after_rollback,
)
from ._verdicts import (
    DEFERRED,
    PLAN,
    ROLLBACK,
    RecordProperty,
    Verdict,
)

__all__ = [
    "DEFERRED",
    "PLAN",
    "ROLLBACK",
    "Detection",
    "FirstAnswer",
    "RecordProperty",
    "SlowRelease",
    "Verdict",
    "assert_no_decision",
    "baseline_histogram",
    "baseline_value",
    "check_aimed_level",
    "check_level",
    "chosen_phases",
    "detect",
    "execute_rollback",
    "faulty_release",
    "hybrid",
    "not_observable",
    "observability_gap",
    "origin_of",
    "scale_budget",
    "settled_baseline",
    "sleep_until",
    "slow_release",
    "steady_reading",
    "verify_after_rollback",
    "window",
]
