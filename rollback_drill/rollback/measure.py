"""Median phase durations over repeated drill runs, from their JUnit reports.

Usage (the closing note's measurement: three runs of every phase drill, then the medians)::

    for i in 1 2 3; do
        .venv/bin/pytest drills/test_rollback_phases.py -m "full or nightly" \\
            --junitxml=reports/phases-$i.xml
    done
    .venv/bin/python -m rollback_drill.rollback.measure reports/phases-*.xml

Each drill records ``phase:<n>_s`` (see :meth:`RollbackResult.properties`); a phase is measured
once per drill it ran in (phase 1 in every drill, phase 3 in 1→3, 1→3→4 and 1→4→3, ...).
"""

from __future__ import annotations

import statistics
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from rollback_drill.rollback.budgets import PHASES

__all__ = ["phase_samples", "summary"]


def phase_samples(paths: Sequence[Path]) -> dict[int, list[tuple[str, float]]]:
    """``phase -> [(test name, seconds), ...]`` over every passed test of every report."""
    samples: dict[int, list[tuple[str, float]]] = defaultdict(list)
    for path in paths:
        for case in ET.parse(path).getroot().iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                continue
            for prop in case.iter("property"):
                name, value = prop.get("name", ""), prop.get("value", "")
                if name.startswith("phase:") and name.endswith("_s"):
                    phase = int(name[len("phase:") : -len("_s")])
                    samples[phase].append((case.get("name", "?"), float(value)))
    return dict(samples)


def summary(paths: Sequence[Path]) -> str:
    samples = phase_samples(paths)
    lines = [f"{'phase':<40} {'n':>3} {'median s':>9} {'min':>7} {'max':>7} {'goal':>6} budget"]
    for number, spec in PHASES.items():
        values = [v for _, v in samples.get(number, [])]
        if not values:
            lines.append(f"{number} {spec.title:<38} {0:>3} {'-':>9}")
            continue
        goal = f"{spec.goal_s:.0f}" if spec.goal_s is not None else "-"
        lines.append(
            f"{number} {spec.title:<38} {len(values):>3} {statistics.median(values):>9.1f} "
            f"{min(values):>7.1f} {max(values):>7.1f} {goal:>6} {spec.budget_s:.0f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print("usage: python -m rollback_drill.rollback.measure JUNIT.xml...", file=sys.stderr)
        return 2
    print(summary([Path(a) for a in args]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
