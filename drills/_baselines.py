"""The baseline a drill aims its fault from: a settled capture, its histogram, its values."""

from __future__ import annotations

import pytest

from rollback_drill.drill import DrillRun
from rollback_drill.metrics import Scope


def settled_baseline(
    run: DrillRun, category: str, *, tolerance: float = 0.5, tries: int = 5
) -> float:
    """Capture the baseline until two captures in a row agree on ``category``'s P95 within
    ``tolerance``; returns that P95. A drill that sets the P95 to a multiple of its baseline
    needs a baseline that is the stack's, not a burst of the machine's (on a busy 2-core host
    one 12-s capture swung from 28 to 1458 ms)."""
    scope = Scope.category(category)
    seen: list[float] = []
    for _ in range(tries):
        run.capture_baseline()
        seen.append(baseline_value(run, "p95_pre_hybrid", scope))
        if len(seen) > 1 and abs(seen[-1] - seen[-2]) <= tolerance * min(seen[-2:]):
            return seen[-1]
    shown = ", ".join(f"{v * 1000:.0f} ms" for v in seen)
    pytest.fail(f"the {category} P95 baseline did not settle ({shown}): host too busy")


def baseline_histogram(run: DrillRun, category: str) -> list[tuple[float, int]]:
    """The category's latencies over the baseline window just captured (pre-hybrid)."""
    hist = run.store.histogram(category, *run.baseline_window())
    assert hist, f"no {category} traffic in the baseline window"
    return hist


def baseline_value(run: DrillRun, baseline_id: str, scope: Scope) -> float:
    assert run.baseline is not None
    value = run.baseline.get(baseline_id, scope)
    assert value is not None and value.usable and value.value is not None, value
    return value.value
