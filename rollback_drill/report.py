"""The drill report for the retrospective: one self-contained HTML file per run.

Sections: first the target's readiness findings (the static part of ``check-target --deep``:
what in its files and the plan will break a rollback; they do not fail the drills), then a
summary table of every drill; per drill its measured properties, a timeline plot
(error rate, P95 latency, memory against the limit, with markers for deployment, fault,
decision, rollback start and end, checklist) embedded as a PNG, the plan's "Lessons Learned"
template filled in and the rollback announcement as sent; then the plan defects and the
policy's resolved ambiguities. Everything comes from the journal and the drills' records.

On the timeline every marker is a number at the top of its line (numbers of markers seconds
apart are staggered over four rows), listed beside the plot with its time and label; the
threshold of the trigger that fired (the drill's ``trigger`` and ``threshold`` properties, in
the metric's units: both bounds of a band) is drawn on the panel of its metric -- error rate,
P95 or memory -- or on a panel of its own for a metric the timeline does not plot, with the
measured value at the decision. The page also embeds its data as JSON
(``<script id="rbd-run-data">``), which ``rollback-drill report`` reads to compare runs.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

if TYPE_CHECKING:
    from rollback_drill.checks.base import CheckResult
    from rollback_drill.rollback.executor import RollbackResult

Point = tuple[float, float]


@dataclass
class Timeline:
    """Series and markers of one drill, times in wall-clock epoch seconds."""

    series: dict[str, list[Point]] = field(
        default_factory=dict
    )  # "error_rate", "p95_s", "memory:<svc>"
    markers: list[tuple[float, str]] = field(default_factory=list)

    def mark(self, wall: float, label: str) -> None:
        self.markers.append((wall, label))

    def ordered_labels(self) -> list[str]:
        return [label for _, label in sorted(self.markers)]


@dataclass
class DrillSummary:
    nodeid: str
    outcome: str  # passed / failed / skipped
    duration_s: float
    properties: dict[str, Any] = field(default_factory=dict)
    timeline: Timeline | None = None
    lessons: dict[str, str] | None = None
    announcement: str | None = None
    failure: str | None = None


@dataclass
class RunReport:
    run_id: str
    started: str
    drills: list[DrillSummary] = field(default_factory=list)
    defects: list[dict[str, Any]] = field(default_factory=list)
    ambiguities: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    # the target's readiness review, static part (``Review.to_dict()``; ``not_run``: why none)
    readiness: dict[str, Any] | None = None


def rollback_executed(result: RollbackResult | None) -> str:
    """The template's "Rollback Executed" from the real outcome: Yes, Partial or No."""
    if result is None or not result.phases:
        return "No (not run)"
    phases = result.phases
    failed = [p for p in phases if p.status != "ok"]
    done = [p for p in phases if p.status == "ok"]
    if result.rolled_back:
        if not result.fallback:
            return "Yes"
        after = ", ".join(f"phase {p.phase} failed" for p in failed)
        return f"Yes (via Phase 5, after {after})"
    where = ", ".join(f"phase {p.phase} ({p.title}) {p.status}" for p in failed)
    if result.interrupted:  # the error says by what: "interrupted by KeyboardInterrupt"
        where = f"{where} ({result.error})" if where else str(result.error)
    where = where or str(result.error)
    if done:
        return f"Partial: phases {', '.join(str(p.phase) for p in done)} done; {where}"
    return f"No: {where}"


def lessons_learned(
    issue: str,
    result: RollbackResult | None,
    checks: Sequence[CheckResult] = (),
    *,
    failure: str | None = None,
    date: str | None = None,
) -> dict[str, str]:
    """The plan's "Rollback Lessons Learned" template filled from the real outcome: whether
    and how far the rollback ran, its time, what worked (passed checks, phases done), what did
    not (failed checks, failed phases and steps with their commands, the failure that ended
    the drill) and the corrected steps of the plan defects it met."""
    worked: list[str] = []
    broke: list[str] = []
    if result is not None:
        for p in result.phases:
            if p.status == "ok":
                worked.append(f"phase {p.phase} ({p.title}) in {p.duration_s:.1f} s")
            else:
                broke.append(f"phase {p.phase} ({p.title}) {p.status}")
            for st in p.steps:
                if not st.ok:
                    last = (st.tail.splitlines() or [""])[-1].strip()
                    said = f": {last}" if last else ""
                    step = f"step p{st.phase}.{st.name}: `{st.cmd}`"
                    broke.append(f"{step} exit {st.returncode}{said}")
        if result.error:
            broke.append(f"rollback error: {result.error}")
    worked += [c.name for c in checks if c.passed]
    broke += [c.line() for c in checks if not c.passed]
    if failure:
        broke.append(f"drill failed: {failure}")
    if result is None or not result.phases:
        took = "n/a: no rollback ran"
    else:
        took = f"{result.time_to_rollback_s:.1f} s (phases {result.label})"
        if result.error is not None or result.phases[-1].status != "ok":
            took += ", until it stopped"
    defects = result.defects if result is not None else []
    return {
        "Date": date or time.strftime("%Y-%m-%d"),
        "Issue": issue,
        "Rollback Executed": rollback_executed(result),
        "Time to Rollback": took,
        "What Worked": "; ".join(worked) or "nothing",
        "What Didn't Work": "; ".join(dict.fromkeys(broke)) or "nothing",
        "Changes Made to Procedure": "; ".join(d.corrected_step for d in defects) or "none",
    }


def lessons_from_summary(d: DrillSummary) -> dict[str, str]:
    """Lessons Learned for a drill that wrote none (its rollback was never reached, or the
    drill has none): from its outcome and properties -- never a "Yes" it did not earn."""
    props = d.properties
    issue = str(props.get("decision") or props.get("trigger") or d.nodeid)
    ran = props.get("time_to_rollback_s")
    if ran is None:
        executed = "No (not run)"
        took = "n/a: no rollback ran"
    else:  # the executor returned: the stack was rolled back (by Phase 5 after a failure?)
        took = f"{ran} s (phases {props.get('phase', '?')})"
        after = props.get("failed_phase")
        executed = "Yes" if after is None else f"Yes (via Phase 5, after phase {after} failed)"
    checks = {k[len("check:") :]: str(v) for k, v in props.items() if k.startswith("check:")}
    failed = [f"{k}: {v}" for k, v in checks.items() if v != "pass"]
    if props.get("failure"):
        failed.insert(0, str(props["failure"]))
    if d.failure:
        failed.append(d.failure.splitlines()[0])
    passed = [k for k, v in checks.items() if v == "pass"]
    return {
        "Date": time.strftime("%Y-%m-%d"),
        "Issue": issue,
        "Rollback Executed": executed,
        "Time to Rollback": took,
        "What Worked": "; ".join(passed) or ("the drill" if d.outcome == "passed" else "nothing"),
        "What Didn't Work": "; ".join(failed) or "nothing",
        "Changes Made to Procedure": str(props.get("plan_defects") or "none"),
    }


_PANELS = (
    ("error_rate", "error rate (%)", 100.0),
    ("p95_s", "P95 latency (ms)", 1000.0),
    ("memory", "memory / limit (%)", 100.0),
)
_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1300px;color:#222}
table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}.passed{color:#176d2c;font-weight:bold}.failed{color:#b00020;font-weight:bold}
.skipped{color:#777}pre{background:#f7f7f7;padding:8px;white-space:pre-wrap}
section{border-top:2px solid #ddd;margin-top:2em;padding-top:.5em}img{max-width:100%}
.timeline{display:flex;gap:1em;align-items:flex-start}.timeline img{max-width:72%}
.timeline table{font-size:85%;margin:0}
.sev-error{color:#b00020;font-weight:bold}.sev-warning{color:#a65f00;font-weight:bold}
table.findings{width:100%;table-layout:fixed;font-size:90%}.findings td{overflow-wrap:anywhere}
"""


# the timeline's panel of each metric it plots (others get a panel of their own)
_METRIC_PANEL = {"error_rate": "error_rate", "p95_latency": "p95_s", "memory_usage_ratio": "memory"}
_LEVELS = 4  # rows the marker numbers are staggered over


@dataclass(frozen=True)
class Threshold:
    """The threshold of the trigger that fired, for the timeline (metric units)."""

    trigger: str
    metric: str  # "" when the policy does not know the trigger
    bounds: tuple[float, ...]  # one threshold, or a band's two bounds
    measured: float | None = None
    at: float | None = None  # wall time of the decision

    @property
    def panel(self) -> str | None:
        return _METRIC_PANEL.get(self.metric)


def _number(value: Any) -> float | None:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _bounds(value: Any) -> tuple[float, ...]:
    if isinstance(value, str) and value.startswith("["):
        try:
            value = json.loads(value)
        except ValueError:
            return ()
    items = value if isinstance(value, list | tuple) else [value]
    return tuple(n for v in items if (n := _number(v)) is not None)


def _metric_of(trigger: str, policy_path: Any = None) -> str:
    from rollback_drill.errors import DrillError
    from rollback_drill.policy import load_policy

    try:
        path = Path(policy_path) if policy_path and Path(str(policy_path)).is_file() else None
        policy = load_policy(path)
    except (DrillError, OSError):
        return ""
    for rule in (*policy.triggers, *policy.matrix):
        if rule.id == trigger:
            return str(rule.metric)
    return ""


def threshold_of(d: DrillSummary, policy_path: Any = None) -> Threshold | None:
    """The fired trigger's threshold, from the drill's properties (None: no decision)."""
    trigger = str(d.properties.get("trigger") or "")
    bounds = _bounds(d.properties.get("threshold"))
    if not trigger or not bounds:
        return None
    at = None
    if d.timeline is not None:
        walls = [w for w, label in d.timeline.markers if label == f"decision {trigger}"]
        at = min(walls) if walls else None
    return Threshold(
        trigger,
        _metric_of(trigger, policy_path),
        bounds,
        _number(d.properties.get("measured_value")),
        at,
    )


def marker_rows(timeline: Timeline) -> list[tuple[int, float, str]]:
    """The markers as numbered on the plot: (number, seconds since the plot's start, label)."""
    t0 = _origin(timeline)
    return [(n, wall - t0, label) for n, (wall, label) in enumerate(sorted(timeline.markers), 1)]


def _origin(timeline: Timeline) -> float:
    walls = [t for pts in timeline.series.values() for t, _ in pts] + [
        t for t, _ in timeline.markers
    ]
    return min(walls) if walls else 0.0


def stagger(xs: list[float], min_gap: float) -> list[int]:
    """A row (0.._LEVELS-1) for each label at ``xs`` (sorted): a label closer than ``min_gap``
    to the last one of a row goes to the next row that has room (the lowest full one else)."""
    last: list[float | None] = [None] * _LEVELS
    rows = []
    for x in xs:
        free = [r for r in range(_LEVELS) if last[r] is None or x - (last[r] or 0.0) >= min_gap]
        row = free[0] if free else min(range(_LEVELS), key=lambda r: last[r] or 0.0)
        last[row] = x
        rows.append(row)
    return rows


def plot_timeline(timeline: Timeline, threshold: Threshold | None = None) -> bytes:
    """The drill's timeline as PNG bytes: one panel per measured quantity, shared time axis,
    numbered markers (see :func:`marker_rows`), the fired trigger's threshold."""
    t0 = _origin(timeline)
    panels = list(_PANELS)
    if threshold is not None and threshold.panel is None:
        name = threshold.metric or "value"
        panels.append(("threshold", f"{threshold.trigger}\n({name})", 1.0))
    fig, axes = plt.subplots(len(panels), 1, sharex=True, figsize=(10, 2.0 + 1.9 * len(panels)))
    for ax, (key, label, factor) in zip(axes, panels, strict=True):
        for name, pts in sorted(timeline.series.items()):
            if name == key or name.startswith(key + ":"):
                ax.plot(
                    [t - t0 for t, _ in pts],
                    [v * factor for _, v in pts],
                    label=name.split(":", 1)[-1] if ":" in name else None,
                    linewidth=1.2,
                )
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if any(name.startswith(key + ":") for name in timeline.series):
            ax.legend(loc="upper left", fontsize=7)
    if threshold is not None:
        _draw_threshold(axes, panels, threshold, t0)
    rows = marker_rows(timeline)
    span = max(
        [x for _, x, _ in rows]
        + [t - t0 for pts in timeline.series.values() for t, _ in pts]
        + [1.0]
    )
    levels = stagger([x for _, x, _ in rows], min_gap=span * 0.035)
    for (n, x, _), level in zip(rows, levels, strict=True):
        for ax in axes:
            ax.axvline(x, color="C3", linestyle="--", linewidth=0.7, alpha=0.8)
        axes[0].annotate(
            str(n),
            (x, 1.0),
            xycoords=("data", "axes fraction"),
            fontsize=7,
            va="bottom",
            ha="center",
            xytext=(0, 2 + level * 11),
            textcoords="offset points",
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "C3", "lw": 0.6},
        )
    if rows:
        axes[0].set_title(" ", pad=8 + _LEVELS * 11)  # room for the staggered numbers
    axes[-1].set_xlabel("seconds since the first sample")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def _draw_threshold(
    axes: Any, panels: list[tuple[str, str, float]], th: Threshold, t0: float
) -> None:
    key = th.panel or "threshold"
    index = [k for k, _, _ in panels].index(key)
    ax, factor = axes[index], panels[index][2]
    what = "band" if len(th.bounds) > 1 else "threshold"
    for n, bound in enumerate(th.bounds):
        ax.axhline(
            bound * factor,
            color="C1",
            linestyle=":",
            linewidth=1.4,
            label=f"{th.trigger} {what}" if n == 0 else None,
        )
    if th.measured is not None and th.at is not None:
        ax.plot(
            [th.at - t0],
            [th.measured * factor],
            marker="D",
            color="C1",
            linestyle="none",
            label=f"measured at the decision ({th.measured * factor:.4g})",
        )
    ax.legend(loc="upper right", fontsize=7)


def _e(value: Any) -> str:
    return html.escape(str(value))


def _table(rows: list[tuple[Any, ...]], head: tuple[str, ...]) -> str:
    out = ["<table><tr>", *(f"<th>{_e(h)}</th>" for h in head), "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _drill_section(d: DrillSummary, policy_path: Any = None) -> str:
    parts = [f'<section id="{_e(d.nodeid)}"><h2>{_e(d.nodeid)}</h2>']
    parts.append(f'<p class="{_e(d.outcome)}">{_e(d.outcome.upper())} in {d.duration_s:.1f} s</p>')
    if d.failure:
        parts.append(f"<pre>{_e(d.failure)}</pre>")
    if d.properties:
        parts.append(_table(sorted(d.properties.items()), ("property", "value")))
    if d.timeline is not None and (d.timeline.series or d.timeline.markers):
        threshold = threshold_of(d, policy_path)
        png = base64.b64encode(plot_timeline(d.timeline, threshold)).decode()
        legend = _table(
            [(n, f"{x:.1f}", label) for n, x, label in marker_rows(d.timeline)],
            ("#", "s", "event"),
        )
        parts.append(
            f'<div class="timeline"><img alt="timeline of {_e(d.nodeid)}" '
            f'src="data:image/png;base64,{png}">{legend}</div>'
        )
        if threshold is not None:
            bounds = " and ".join(f"{b:g}" for b in threshold.bounds)
            measured = "" if threshold.measured is None else f", measured {threshold.measured:g}"
            parts.append(
                f"<p>Dotted: the threshold of {_e(threshold.trigger)} "
                f"({_e(threshold.metric or 'metric unknown')}): {_e(bounds)}{_e(measured)}.</p>"
            )
    if d.lessons:
        parts.append("<h3>Rollback Lessons Learned</h3>")
        parts.append(_table(list(d.lessons.items()), ("field", "value")))
    if d.announcement:
        parts.append(f"<h3>Rollback announcement (as sent)</h3><pre>{_e(d.announcement)}</pre>")
    elif d.lessons and not str(d.lessons.get("Rollback Executed", "")).startswith("No"):
        parts.append("<h3>Rollback announcement</h3><p>None recorded (no sink file).</p>")
    parts.append("</section>")
    return "".join(parts)


def readiness_section(readiness: dict[str, Any] | None) -> str:
    """The target's readiness findings (``check-target --deep``'s static review): severity,
    file:line, the plan step each breaks and the fix; errors shown, warnings and info one
    click away. They do not fail the drills."""
    if readiness is None:
        return ""
    head = "<section id='readiness'><h2>Readiness: what in the target will break a rollback</h2>"
    if readiness.get("not_run"):
        return f"{head}<p>Not reviewed: {_e(readiness['not_run'])}</p></section>"
    findings: list[dict[str, Any]] = readiness.get("findings") or []
    errors = [f for f in findings if f.get("severity") == "error"]
    others = [f for f in findings if f.get("severity") != "error"]
    warnings = sum(f.get("severity") == "warning" for f in others)
    rest = (
        f"<details><summary>{warnings} warning(s), {len(others) - warnings} info</summary>"
        f"{_findings_table(others)}</details>"
        if others
        else ""
    )
    checked = "".join(f"<li>{_e(c)}</li>" for c in readiness.get("checked") or [])
    return (
        f"{head}<p>{len(errors)} error(s), {warnings} warning(s), "
        f"{len(others) - warnings} info in the static review of target "
        f"{_e(readiness.get('target'))} (releases {_e(', '.join(readiness.get('releases') or []))}"
        f"; {readiness.get('duration_s', 0):.1f} s; nothing deployed, no stack started: "
        "<code>rollback-drill check-target --deep --no-start</code>). Error-level findings do "
        "not fail the drills, which judge the rollback.</p>"
        f"{_findings_table(errors) if errors else '<p>No error-level finding.</p>'}{rest}"
        f"<details><summary>checked</summary><ul>{checked}</ul></details></section>"
    )


def _findings_table(findings: list[dict[str, Any]]) -> str:
    rows = []
    for f in findings:
        where = f"{f.get('file')}:{f['line']}" if f.get("line") else f.get("file")
        cells = (where, ", ".join(f.get("releases") or []), f.get("message"), f.get("breaks"))
        rows.append(
            f"<tr><td class='sev-{_e(f.get('severity'))}'>{_e(f.get('severity'))}</td>"
            + "".join(f"<td>{_e(c)}</td>" for c in (*cells, f.get("fix")))
            + "</tr>"
        )
    widths = (7, 20, 7, 26, 20, 20)
    cols = "".join(f"<col style='width:{w}%'>" for w in widths)
    return (
        f"<table class='findings'>{cols}<tr><th>severity</th><th>where</th><th>releases</th>"
        f"<th>finding</th><th>breaks (plan step)</th><th>fix</th></tr>{''.join(rows)}</table>"
    )


def render_html(report: RunReport) -> str:
    counts = {
        k: sum(d.outcome == k for d in report.drills) for k in ("passed", "failed", "skipped")
    }
    summary_rows = [
        (
            d.nodeid,
            d.outcome,
            f"{d.duration_s:.1f}",
            d.properties.get("trigger", ""),
            d.properties.get("decision", ""),
            d.properties.get("time_to_detect_s", ""),
            d.properties.get("phase", ""),
            d.properties.get("time_to_rollback_s", ""),
            d.properties.get("budget_s", ""),
        )
        for d in report.drills
    ]
    body = [
        f"<h1>Rollback drill report — run {_e(report.run_id)}</h1>",
        f"<p>Started {_e(report.started)}. "
        + ", ".join(f"{v} {k}" for k, v in counts.items())
        + ".</p>",
        readiness_section(report.readiness),
        _table(sorted(report.settings.items()), ("setting", "value")) if report.settings else "",
        "<h2>Summary</h2>",
        _table(
            summary_rows,
            (
                "drill",
                "outcome",
                "s",
                "trigger",
                "decision",
                "detect s",
                "phase",
                "rollback s",
                "budget s",
            ),
        ),
        *(_drill_section(d, report.settings.get("policy")) for d in report.drills),
        "<section><h2>Plan defects found</h2>",
        _table(
            [
                (x.get("id"), x.get("plan_says"), x.get("what_happened"), x.get("corrected_step"))
                for x in report.defects
            ],
            ("defect", "the plan says", "what happened", "corrected step"),
        )
        if report.defects
        else "<p>None recorded in this run.</p>",
        "</section><section><h2>Plan ambiguities and the policy's resolutions</h2>",
        _table(
            [(a.get("id"), a.get("plan_says"), a.get("resolution")) for a in report.ambiguities],
            ("ambiguity", "the plan says", "resolution"),
        )
        if report.ambiguities
        else "<p>None.</p>",
        "</section>",
    ]
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Rollback drill report {_e(report.run_id)}</title><style>{_CSS}</style></head>"
        f"<body>{''.join(body)}{run_data(report)}</body></html>"
    )


def run_data(report: RunReport) -> str:
    """The run's drills, outcomes, properties and defects as JSON in the page, for
    ``rollback-drill report`` (:mod:`rollback_drill.trends`) to compare runs."""
    data = {
        "run_id": report.run_id,
        "started": report.started,
        "drills": [
            {
                "nodeid": d.nodeid,
                "outcome": d.outcome,
                "duration_s": round(d.duration_s, 2),
                "properties": d.properties,
            }
            for d in report.drills
        ],
        "defects": [{"id": x.get("id"), "seen_in": x.get("seen_in") or []} for x in report.defects],
    }
    text = json.dumps(data, default=str).replace("</", "<\\/")
    return f'<script type="application/json" id="rbd-run-data">{text}</script>'
