"""Time to detect per trigger, from the drills' JUnit reports (median over runs).

    python -m rollback_drill.faults.ttd reports/ttd-*.xml

Each drill case records ``trigger`` and ``time_to_detect_s`` (and, where the fault set a level,
``injected_level`` and ``steady_value``) as JUnit properties; this reads any number of report
files and prints one Markdown row per drill: runs, median / min / max time to detect, and the
injected level against the measured one. A failed case is counted; it is also timed when it
failed after its decision was detected (a level check that failed afterwards: the time to
detect is still a measurement), and shown as such.
"""

from __future__ import annotations

import statistics
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Row", "collect", "main", "table"]


@dataclass
class Row:
    drill: str
    trigger: str = ""
    times: list[float] = field(default_factory=list)
    failed: int = 0
    failed_after_detect: int = 0  # of ``failed``: timed, the failure came after detection
    levels: list[tuple[float, float]] = field(default_factory=list)  # (injected, measured)


def collect(paths: Iterable[Path]) -> list[Row]:
    rows: dict[str, Row] = {}
    for path in paths:
        for case in ET.parse(path).getroot().iter("testcase"):
            props = {p.get("name", ""): p.get("value", "") for p in case.iter("property")}
            name = case.get("name", "?")
            row = rows.setdefault(name, Row(name))
            row.trigger = props.get("trigger", row.trigger)
            failed = case.find("failure") is not None or case.find("error") is not None
            if failed:
                row.failed += 1
                if "time_to_detect_s" not in props:
                    continue
                row.failed_after_detect += 1
            if case.find("skipped") is not None:
                continue
            if "time_to_detect_s" in props:
                row.times.append(float(props["time_to_detect_s"]))
            if props.get("injected_level") and props.get("steady_value") not in (None, "None"):
                row.levels.append((float(props["injected_level"]), float(props["steady_value"])))
    return list(rows.values())


def table(rows: Sequence[Row]) -> str:
    out = [
        "| drill | trigger | runs | median TTD s | min | max | injected -> measured |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r.trigger, r.drill)):
        if not r.times and not r.failed:
            continue
        before = r.failed - r.failed_after_detect
        runs = f"{len(r.times)}" + (f" (+{before} failed)" if before else "")
        if r.failed_after_detect:
            runs += f" ({r.failed_after_detect} failed after detection)"
        if r.times:
            stats = f"{statistics.median(r.times):.1f} | {min(r.times):.1f} | {max(r.times):.1f}"
        else:
            stats = "- | - | -"
        levels = ", ".join(f"{i:g} -> {m:.4g}" for i, m in r.levels) or ""
        out.append(f"| {r.drill} | {r.trigger} | {runs} | {stats} | {levels} |")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    print(table(collect(Path(a) for a in args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
