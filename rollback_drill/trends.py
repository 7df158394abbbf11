"""Runs over time: ``rollback-drill report JUNIT_OR_RUN_DIR... [--html OUT] [--plots DIR]``.

Across any number of runs: per trigger the time to detect (median, min, max, over every run)
and the outcomes; per rollback phase sequence the time to roll back against its budget; the
plan defects found and in which runs; which drills failed when. As terminal tables (rich),
and with ``--html`` one self-contained page with the same tables and two plots (the time to
detect per trigger, run by run; each sequence's time to roll back against its budget), also
written as PNG files with ``--plots``.

An input is
- a JUnit file (``--junitxml`` of a drill run, ``junit_family=xunit1``): one run;
- a run directory ``reports/drill/<time>-<run id>/``: one run, read from the data its
  ``report.html`` embeds (:func:`rollback_drill.report.render_html`), or, for a report written
  before it did, from its ``journal.jsonl`` (drills, decisions with their time to detect,
  plan defects; outcomes unknown);
- any other directory: one run made of every JUnit file beneath it (a night's downloaded
  artifacts), or, holding none, every run directory beneath it.

The times to detect are aggregated by :mod:`rollback_drill.faults.ttd` (a run directory is
read into a JUnit document first). Runs are ordered by when they started.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import statistics
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rollback_drill.faults import ttd

__all__ = ["Case", "Run", "Trends", "load_runs", "run_report", "trends"]

OUTCOMES = ("passed", "failed", "skipped", "unknown")
_DATA_ID = "rbd-run-data"
_DATA = re.compile(rf'<script type="application/json" id="{_DATA_ID}">(.*?)</script>', re.DOTALL)


@dataclass
class Case:
    name: str
    outcome: str  # passed / failed / skipped / unknown
    props: dict[str, str] = field(default_factory=dict)
    message: str = ""


@dataclass
class Run:
    label: str
    when: str  # ISO 8601, "" when unknown
    cases: list[Case] = field(default_factory=list)
    defects: dict[str, list[str]] = field(default_factory=dict)  # id -> where seen
    junit: list[Path] = field(default_factory=list)  # what faults.ttd reads for this run

    @property
    def short(self) -> str:
        return f"{self.when[:16].replace('T', ' ')} {self.label}".strip()


# ---- reading --------------------------------------------------------------------------------
def _props(case: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in case.iter("property")}


def _outcome(case: ET.Element) -> tuple[str, str]:
    for tag, outcome in (("failure", "failed"), ("error", "failed"), ("skipped", "skipped")):
        el = case.find(tag)
        if el is not None:
            message = (el.get("message") or "").strip()
            return outcome, message.splitlines()[0] if message else ""
    return "passed", ""


def read_junit(path: Path) -> tuple[list[Case], str]:
    """The cases of one JUnit file and when its first suite started ("" if not recorded)."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise ValueError(f"{path}: not a JUnit file ({exc})") from None
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    stamps = sorted(s.get("timestamp", "") for s in suites if s.get("timestamp"))
    cases = []
    for el in root.iter("testcase"):
        outcome, message = _outcome(el)
        cases.append(Case(el.get("name", "?"), outcome, _props(el), message))
    return cases, stamps[0] if stamps else ""


def _junit_document(cases: Iterable[Case], when: str) -> ET.ElementTree[ET.Element]:
    suites = ET.Element("testsuites")
    suite = ET.SubElement(suites, "testsuite", name="pytest", timestamp=when)
    for c in cases:
        el = ET.SubElement(suite, "testcase", name=c.name)
        if c.props:
            props = ET.SubElement(el, "properties")
            for k, v in c.props.items():
                ET.SubElement(props, "property", name=k, value=v)
        if c.outcome == "failed":
            ET.SubElement(el, "failure", message=c.message)
        elif c.outcome == "skipped":
            ET.SubElement(el, "skipped", message=c.message)
    return ET.ElementTree(suites)


def _dir_time(name: str) -> str:
    m = re.match(r"(\d{8}-\d{6})", name)
    if not m:
        return ""
    return datetime.strptime(m.group(1), "%Y%m%d-%H%M%S").isoformat()


def _str(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def read_run_dir(path: Path) -> Run:
    """A drill run directory: the data its report.html embeds, else its journal."""
    run = Run(path.name, _dir_time(path.name))
    report = path / "report.html"
    match = _DATA.search(report.read_text()) if report.is_file() else None
    if match is not None:
        data = json.loads(match.group(1))
        for d in data.get("drills", []):
            name = str(d.get("nodeid", "?")).rpartition("::")[2]
            props = {k: _str(v) for k, v in (d.get("properties") or {}).items()}
            run.cases.append(Case(name, str(d.get("outcome", "unknown")), props))
        for x in data.get("defects", []):
            run.defects.setdefault(str(x.get("id")), []).extend(x.get("seen_in") or [])
        return run
    journal = path / "journal.jsonl"
    if not journal.is_file():
        raise ValueError(f"{path}: neither a run directory (journal.jsonl) nor JUnit files")
    current: Case | None = None
    for line in journal.read_text().splitlines():
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            continue
        kind, name = ev.get("kind"), str(ev.get("name", ""))
        if kind == "drill" and ev.get("phase") == "start":
            current = Case(name.rpartition("::")[2], "unknown")
            run.cases.append(current)
        elif kind == "marker" and name.startswith("decision ") and current is not None:
            current.props.setdefault("trigger", name.removeprefix("decision "))
            if "ttd_s" in ev:
                current.props.setdefault("time_to_detect_s", str(ev["ttd_s"]))
        elif kind == "defect":
            run.defects.setdefault(name, []).append(str(ev.get("seen_in", "")))
    return run


def _junit_run(label: str, paths: Sequence[Path]) -> Run:
    run = Run(label, "", junit=list(paths))
    stamps = []
    for p in paths:
        cases, when = read_junit(p)
        run.cases += cases
        stamps += [when] if when else []
    run.when = min(stamps) if stamps else ""
    for c in run.cases:
        for defect in filter(None, c.props.get("plan_defects", "").split(",")):
            run.defects.setdefault(defect.strip(), []).append(c.name)
    return run


def load_runs(inputs: Sequence[Path], scratch: Path) -> list[Run]:
    """Every input as runs (see the module's docstring), ordered by when they started. Run
    directories are also written as JUnit files into ``scratch`` for :mod:`faults.ttd`."""
    runs: list[Run] = []
    for path in inputs:
        if path.is_file():
            runs.append(_junit_run(path.name, [path]))
        elif (path / "journal.jsonl").is_file() or (path / "report.html").is_file():
            runs.append(read_run_dir(path))
        elif path.is_dir():
            xml = sorted(path.rglob("*.xml"))
            if xml:
                runs.append(_junit_run(path.name, xml))
            else:
                found = sorted({j.parent for j in path.rglob("journal.jsonl")})
                if not found:
                    raise ValueError(f"{path}: no JUnit file and no run directory in it")
                runs += [read_run_dir(d) for d in found]
        else:
            raise ValueError(f"{path}: not found")
    for n, run in enumerate(runs):
        if not run.junit:
            out = scratch / f"run-{n}.xml"
            _junit_document(run.cases, run.when).write(out, encoding="utf-8")
            run.junit = [out]
    return sorted(runs, key=lambda r: (r.when or "~", r.label))


# ---- aggregating ----------------------------------------------------------------------------
@dataclass
class Table:
    title: str
    head: tuple[str, ...]
    rows: Sequence[tuple[str, ...]]


@dataclass
class Trends:
    runs: list[Run]
    tables: list[Table]
    ttd_series: dict[str, list[float | None]]  # trigger -> median TTD per run (None: no value)
    phase_series: dict[str, list[float | None]]  # sequence -> time to roll back per run
    budgets: dict[str, float]  # sequence -> budget s


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _outcomes(cases: Iterable[Case]) -> str:
    counts = {o: 0 for o in OUTCOMES}
    for c in cases:
        counts[c.outcome if c.outcome in counts else "unknown"] += 1
    return ", ".join(f"{n} {o}" for o, n in counts.items() if n) or "-"


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "", "None") else None
    except ValueError:
        return None


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def trends(runs: list[Run]) -> Trends:
    cases = [(n, c) for n, run in enumerate(runs) for c in run.cases]

    # per trigger: the times to detect as faults.ttd aggregates them, outcomes from the cases
    by_trigger: dict[str, list[float]] = {}
    for row in ttd.collect(p for run in runs for p in run.junit):
        if row.trigger:
            by_trigger.setdefault(row.trigger, []).extend(row.times)
    ttd_series: dict[str, list[float | None]] = {}
    for n, run in enumerate(runs):
        per_run: dict[str, list[float]] = {}
        for row in ttd.collect(run.junit):
            if row.trigger:
                per_run.setdefault(row.trigger, []).extend(row.times)
        for trigger in by_trigger:
            ttd_series.setdefault(trigger, [None] * len(runs))[n] = _median(
                per_run.get(trigger, [])
            )
    trigger_rows = []
    for trigger in sorted({c.props["trigger"] for _, c in cases if c.props.get("trigger")}):
        mine = [c for _, c in cases if c.props.get("trigger") == trigger]
        times = by_trigger.get(trigger, [])
        limits = [b for c in mine if (b := _float(c.props.get("detect_budget_s"))) is not None]
        trigger_rows.append(
            (
                trigger,
                str(len({n for n, c in cases if c.props.get("trigger") == trigger})),
                _outcomes(mine),
                str(len(times)),
                _f(_median(times)),
                _f(min(times) if times else None),
                _f(max(times) if times else None),
                _f(_median(limits)),
            )
        )

    # per phase sequence: time to roll back against its budget
    phase_series: dict[str, list[float | None]] = {}
    budgets: dict[str, float] = {}
    by_phase: dict[str, list[Case]] = {}
    for n, c in cases:
        label = c.props.get("phase")
        took = _float(c.props.get("time_to_rollback_s"))
        if not label:
            continue
        by_phase.setdefault(label, []).append(c)
        if (budget := _float(c.props.get("budget_s"))) is not None:
            budgets[label] = budget
        if took is not None:
            series = phase_series.setdefault(label, [None] * len(runs))
            series[n] = took if series[n] is None else max(took, series[n] or 0.0)
    phase_rows = []
    for label, mine in sorted(by_phase.items()):
        times = [t for c in mine if (t := _float(c.props.get("time_to_rollback_s"))) is not None]
        budget = budgets.get(label)
        over = sum(t > budget for t in times) if budget is not None else 0
        steps: dict[str, list[float]] = {}
        for c in mine:
            for key, value in c.props.items():
                if key.startswith("phase:") and (v := _float(value)) is not None:
                    steps.setdefault(key[6:].removesuffix("_s"), []).append(v)
        per_phase = ", ".join(
            f"{p}: {_f(_median(v))}"
            + (f"/{_f(b)}" if (b := _float(mine[0].props.get(f"budget:{p}_s"))) is not None else "")
            for p, v in sorted(steps.items())
        )
        phase_rows.append(
            (
                label,
                _outcomes(mine),
                str(len(times)),
                _f(_median(times)),
                _f(min(times) if times else None),
                _f(max(times) if times else None),
                _f(budget),
                f"{over} of {len(times)}",
                per_phase or "-",
            )
        )

    # plan defects, and which drills failed when
    defect_runs: dict[str, list[int]] = {}
    defect_where: dict[str, set[str]] = {}
    for n, run in enumerate(runs):
        for defect, where in run.defects.items():
            defect_runs.setdefault(defect, []).append(n)
            defect_where.setdefault(defect, set()).update(w for w in where if w)
    defect_rows = [
        (
            defect,
            f"{len(ns)} of {len(runs)}",
            runs[ns[0]].short,
            runs[ns[-1]].short,
            "; ".join(sorted(defect_where[defect]))[:200] or "-",
        )
        for defect, ns in sorted(defect_runs.items())
    ]
    failed = sorted({c.name for _, c in cases if c.outcome == "failed"})
    failure_rows = []
    for name in failed:
        marks = []
        for run in runs:
            mine = [c for c in run.cases if c.name == name]
            marks.append(
                "FAIL"
                if any(c.outcome == "failed" for c in mine)
                else ("ok" if any(c.outcome == "passed" for c in mine) else "-")
            )
        failure_rows.append((name, *marks))
    tables = [
        Table(
            "Runs",
            ("#", "started", "source", "drills", "outcomes"),
            [
                (str(n + 1), run.when or "?", run.label, str(len(run.cases)), _outcomes(run.cases))
                for n, run in enumerate(runs)
            ],
        ),
        Table(
            "Time to detect per trigger (s)",
            ("trigger", "runs", "outcomes", "timed", "median", "min", "max", "budget"),
            trigger_rows,
        ),
        Table(
            "Time to roll back per phase sequence (s)",
            (
                "phases",
                "outcomes",
                "timed",
                "median",
                "min",
                "max",
                "budget",
                "over budget",
                "per phase median/budget",
            ),
            phase_rows,
        ),
        Table(
            "Plan defects found",
            ("defect", "runs", "first seen", "last seen", "where"),
            defect_rows,
        ),
        Table(
            "Drills that failed, run by run",
            ("drill", *(f"#{n + 1}" for n in range(len(runs)))),
            failure_rows,
        ),
    ]
    return Trends(runs, tables, ttd_series, phase_series, budgets)


# ---- output ---------------------------------------------------------------------------------
def plot_ttd(t: Trends) -> bytes:
    """Time to detect per trigger, run by run (median of the run's drills of that trigger)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5))
    xs = list(range(1, len(t.runs) + 1))
    for trigger, series in sorted(t.ttd_series.items()):
        pts = [(x, v) for x, v in zip(xs, series, strict=True) if v is not None]
        if pts:
            ax.plot([x for x, _ in pts], [v for _, v in pts], marker="o", label=trigger)
    return _finish(fig, ax, xs, "time to detect (s)", "Time to detect per trigger over runs")


def plot_phases(t: Trends) -> bytes:
    """Each phase sequence's time to roll back, run by run, against its budget (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5))
    xs = list(range(1, len(t.runs) + 1))
    for i, (label, series) in enumerate(sorted(t.phase_series.items())):
        color = f"C{i % 10}"
        pts = [(x, v) for x, v in zip(xs, series, strict=True) if v is not None]
        ax.plot([x for x, _ in pts], [v for _, v in pts], marker="o", color=color, label=label)
        if label in t.budgets:
            ax.axhline(t.budgets[label], color=color, linestyle="--", linewidth=0.9)
            ax.annotate(
                f"budget {label}",
                (1.0, t.budgets[label]),
                xycoords=("axes fraction", "data"),
                fontsize=7,
                color=color,
                ha="right",
                va="bottom",
            )
    title = "Rollback time per phase sequence against its budget (dashed)"
    return _finish(fig, ax, xs, "time to roll back (s)", title)


def _finish(fig: Any, ax: Any, xs: list[int], ylabel: str, title: str) -> bytes:
    """The runs on the x axis, labels, grid and the legend beside the plot; the PNG."""
    ax.set_xticks(xs, [f"#{x}" for x in xs])
    ax.set_xlabel("run (see the Runs table)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _png(fig)


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def print_tables(t: Trends, console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table as RichTable

    console = console or Console()
    for table in t.tables:
        rt = RichTable(title=table.title, title_justify="left")
        for h in table.head:
            rt.add_column(h, overflow="fold")
        for row in table.rows:
            rt.add_row(*row)
        if not table.rows:
            rt.add_row("(none)", *[""] * (len(table.head) - 1))
        console.print(rt)


def render_html(t: Trends, plots: dict[str, bytes]) -> str:
    e = html.escape
    parts = [
        f"<h1>Rollback drills over {len(t.runs)} run(s)</h1>",
        f"<p>Written {e(time.strftime('%Y-%m-%d %H:%M:%S %Z'))} by "
        "<code>rollback-drill report</code>.</p>",
    ]
    for table in t.tables:
        parts.append(f"<h2>{e(table.title)}</h2>")
        if not table.rows:
            parts.append("<p>None.</p>")
            continue
        parts.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in table.head) + "</tr>")
        for row in table.rows:
            cells = "".join(
                f'<td class="failed">{e(c)}</td>' if c == "FAIL" else f"<td>{e(c)}</td>"
                for c in row
            )
            parts.append(f"<tr>{cells}</tr>")
        parts.append("</table>")
    for title, png in plots.items():
        data = base64.b64encode(png).decode()
        parts.append(
            f'<h2>{e(title)}</h2><img alt="{e(title)}" src="data:image/png;base64,{data}">'
        )
    css = (
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:left}th{background:#f3f3f3}.failed{color:#b00020;font-weight:bold}"
        "img{max-width:100%}"
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Rollback drills over runs"
        f"</title><style>{css}</style></head><body>{''.join(parts)}</body></html>"
    )


PLOTS = {
    "ttd.png": "Time to detect per trigger over runs",
    "phases.png": "Rollback time per phase sequence against its budget",
}


def run_report(
    inputs: Sequence[Path],
    *,
    html_out: Path | None = None,
    plots_dir: Path | None = None,
    console: Any = None,
) -> int:
    """The ``report`` command: tables on the terminal, optionally an HTML page and PNGs."""
    from rollback_drill.errors import DrillError

    with tempfile.TemporaryDirectory(prefix="rbd-report-") as scratch:
        try:
            runs = load_runs(inputs, Path(scratch))
        except ValueError as exc:
            raise DrillError(str(exc)) from None
        t = trends(runs)
    print_tables(t, console)
    if html_out is None and plots_dir is None:
        return 0
    plots = {"ttd.png": plot_ttd(t), "phases.png": plot_phases(t)}
    if plots_dir is not None:
        plots_dir.mkdir(parents=True, exist_ok=True)
        for name, png in plots.items():
            (plots_dir / name).write_bytes(png)
            _say(console, f"plot: {plots_dir / name}")
    if html_out is not None:
        html_out.parent.mkdir(parents=True, exist_ok=True)
        html_out.write_text(render_html(t, {PLOTS[n]: png for n, png in plots.items()}))
        _say(console, f"report: {html_out}")
    return 0


def _say(console: Any, text: str) -> None:
    if console is not None:
        console.print(text)
    else:
        print(text)
