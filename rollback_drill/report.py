"""The drill report for the retrospective: one self-contained HTML file per run.

Sections: a summary table of every drill; per drill its measured properties, a timeline plot
(error rate, P95 latency, memory against the limit, with markers for deployment, fault,
decision, rollback start and end, checklist) embedded as a PNG, the plan's "Lessons Learned"
template filled in and the rollback announcement as sent; then the plan defects and the
policy's resolved ambiguities. Everything comes from the journal and the drills' records.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

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


_PANELS = (
    ("error_rate", "error rate (%)", 100.0),
    ("p95_s", "P95 latency (ms)", 1000.0),
    ("memory", "memory / limit (%)", 100.0),
)
_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}.passed{color:#176d2c;font-weight:bold}.failed{color:#b00020;font-weight:bold}
.skipped{color:#777}pre{background:#f7f7f7;padding:8px;white-space:pre-wrap}
section{border-top:2px solid #ddd;margin-top:2em;padding-top:.5em}img{max-width:100%}
"""


def plot_timeline(timeline: Timeline) -> bytes:
    """The drill's timeline as PNG bytes: one panel per measured quantity, shared time axis."""
    walls = [t for pts in timeline.series.values() for t, _ in pts] + [
        t for t, _ in timeline.markers
    ]
    t0 = min(walls) if walls else 0.0
    fig, axes = plt.subplots(len(_PANELS), 1, sharex=True, figsize=(10, 7))
    for ax, (key, label, factor) in zip(axes, _PANELS, strict=True):
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
    for i, (wall, text) in enumerate(sorted(timeline.markers)):
        for ax in axes:
            ax.axvline(wall - t0, color="C3", linestyle="--", linewidth=0.8)
        axes[0].annotate(
            text,
            (wall - t0, 1.0),
            xycoords=("data", "axes fraction"),
            rotation=60,
            fontsize=7,
            va="bottom",
            ha="left",
            xytext=(0, 2 + (i % 2) * 4),
            textcoords="offset points",
        )
    axes[-1].set_xlabel("seconds since the first sample")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def _e(value: Any) -> str:
    return html.escape(str(value))


def _table(rows: list[tuple[Any, ...]], head: tuple[str, ...]) -> str:
    out = ["<table><tr>", *(f"<th>{_e(h)}</th>" for h in head), "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _drill_section(d: DrillSummary) -> str:
    parts = [f'<section id="{_e(d.nodeid)}"><h2>{_e(d.nodeid)}</h2>']
    parts.append(f'<p class="{_e(d.outcome)}">{_e(d.outcome.upper())} in {d.duration_s:.1f} s</p>')
    if d.failure:
        parts.append(f"<pre>{_e(d.failure)}</pre>")
    if d.properties:
        parts.append(_table(sorted(d.properties.items()), ("property", "value")))
    if d.timeline is not None and (d.timeline.series or d.timeline.markers):
        png = base64.b64encode(plot_timeline(d.timeline)).decode()
        order = " → ".join(d.timeline.ordered_labels())
        parts.append(f'<img alt="timeline of {_e(d.nodeid)}" src="data:image/png;base64,{png}">')
        parts.append(f"<p>Order of events: {_e(order)}</p>")
    if d.lessons:
        parts.append("<h3>Rollback Lessons Learned</h3>")
        parts.append(_table(list(d.lessons.items()), ("field", "value")))
    if d.announcement:
        parts.append(f"<h3>Rollback announcement (as sent)</h3><pre>{_e(d.announcement)}</pre>")
    parts.append("</section>")
    return "".join(parts)


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
        *(_drill_section(d) for d in report.drills),
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
        f"<body>{''.join(body)}</body></html>"
    )
