"""A drill run's journal as Chaos Toolkit journals, for teams that already report with it.

``export(events)`` turns the events of ``journal.jsonl`` (:mod:`rollback_drill.journal`) into
one Chaos Toolkit journal per drill, in the shape chaostoolkit-lib writes
(``chaoslib/run.py``: ``initialize_run_journal``, ``run_gate_hypothesis``,
``run_deviation_validation_hypothesis``, ``run_method``, ``run_rollback``;
``chaoslib/activity.py``: ``execute_activity``; ``chaoslib/hypothesis.py``;
chaostoolkit-lib at commit 72f814b4)::

    {"chaoslib-version", "platform", "node", "experiment", "start", "end", "duration",
     "status": completed | failed | interrupted, "deviated",
     "steady_states": {"before": STATE | None, "after": STATE | None, "during": []},
     "run": [RUN...], "rollbacks": [RUN...]}
    STATE = {"steady_state_met": bool, "probes": [RUN + "tolerance_met"...]}
    RUN = {"activity", "output", "start", "end", "duration", "status": succeeded | failed,
           "exception": [text] (failed only)}

How a drill maps onto it: the drill (from its ``drill`` start event to the next) is the
experiment; the ``baseline captured`` event is the steady state *before* (met when it
captured a value); the validation checklist's ``check`` steps are the steady state
*after* (met when every check passed: otherwise the run ``deviated``); ``rollback`` and
``phase`` steps are the rollbacks; every other step (stack, deploy, backup, fault, script) and
point event (decision, marker, probe, defect, diagnostics, instrument) is a method activity,
in journal order. A step is its start and end events (duration and status from the end); a
point event is an activity of zero duration; a step with no end event failed (the run was
interrupted). The experiment declares each activity once (a Python provider naming the
engine module that journals it), so ``chaos report`` shows it by name.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rollback_drill.errors import DrillError

__all__ = ["JournalFileError", "add_parser", "export", "main", "read_events"]

Json = dict[str, Any]

_MODULES = {
    "stack": "rollback_drill.stack",
    "deploy": "rollback_drill.deploy",
    "backup": "rollback_drill.backup",
    "rollback": "rollback_drill.rollback",
    "phase": "rollback_drill.rollback",
    "fault": "rollback_drill.faults",
    "probe": "rollback_drill.faults.probes",
    "decision": "rollback_drill.monitor",
    "check": "rollback_drill.checks.checklist",
    "baseline": "rollback_drill.drill",
    "marker": "rollback_drill.drill",
    "instrument": "rollback_drill.drill",
    "script": "rollback_drill.plan_scripts",
    "defect": "rollback_drill.defects",
    "diagnostics": "rollback_drill.diagnostics",
}
_PROBES = {"baseline", "decision", "check", "probe", "diagnostics", "instrument", "marker"}
_ROLLBACKS = {"rollback", "phase"}
_STEP_FIELDS = {"kind", "name", "wall", "mono", "phase", "status", "duration_s", "error"}


class JournalFileError(DrillError):
    """The journal file cannot be read or holds no events."""


def read_events(path: Path) -> list[Json]:
    """The events of a ``journal.jsonl``, in order; one line names a malformed line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise JournalFileError(f"{path}: cannot read the journal: {exc}") from None
    events = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as exc:
            raise JournalFileError(f"{path}: line {number}: not JSON ({exc.msg})") from None
        if not isinstance(event, dict) or not {"kind", "name", "wall"} <= event.keys():
            raise JournalFileError(f"{path}: line {number}: not a journal event")
        events.append(event)
    if not events:
        raise JournalFileError(f"{path}: no events")
    return events


def _iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat()


def _drills(events: Sequence[Json]) -> list[tuple[str, list[Json]]]:
    """(drill name, its events): from each ``drill`` start event to the next."""
    out: list[tuple[str, list[Json]]] = []
    for ev in events:
        if ev["kind"] == "drill" and ev.get("phase") == "start":
            out.append((str(ev["name"]), []))
        elif not out:
            out.append(("drill", []))
        out[-1][1].append(ev)
    return out


def _activity(kind: str, name: str) -> Json:
    return {
        "type": "probe" if kind in _PROBES else "action",
        "name": f"{kind}: {name}",
        "provider": {
            "type": "python",
            "module": _MODULES.get(kind, "rollback_drill"),
            "func": kind,
            "arguments": {"name": name},
        },
    }


def _runs(events: Sequence[Json]) -> list[tuple[str, Json]]:
    """(kind, Chaos Toolkit run) per step or point event, in the order they started."""
    out: list[tuple[str, Json]] = []
    open_: dict[tuple[str, str], list[Json]] = {}
    for ev in events:
        kind, name, phase = str(ev["kind"]), str(ev["name"]), ev.get("phase")
        if kind == "drill":
            continue
        output = {k: v for k, v in ev.items() if k not in _STEP_FIELDS}
        if phase == "start":
            run: Json = {"activity": _activity(kind, name), "output": output or None}
            run["start"] = _iso(float(ev["wall"]))
            run["_wall"] = float(ev["wall"])
            open_.setdefault((kind, name), []).append(run)
            out.append((kind, run))
            continue
        if phase == "end" and open_.get((kind, name)):
            run = open_[(kind, name)].pop()
            if output:
                run["output"] = {**(run["output"] or {}), **output}
        else:  # a point event
            run = {"activity": _activity(kind, name), "output": output or None}
            run["start"] = _iso(float(ev["wall"]))
            run["_wall"] = float(ev["wall"])
            out.append((kind, run))
        failed = ev.get("status") == "failed"
        run["status"] = "failed" if failed else "succeeded"
        if failed:
            run["exception"] = [str(ev.get("error", "failed"))]
        run["end"] = _iso(float(ev["wall"]))
        run["duration"] = float(ev.get("duration_s", float(ev["wall"]) - run["_wall"]))
    for runs in open_.values():
        for run in runs:  # started, never ended: the run was interrupted in this step
            run.update(status="failed", end=run["start"], duration=0.0)
            run["exception"] = ["no end event in the journal: interrupted in this step"]
    for _, run in out:
        run.pop("_wall")
    return out


def _state(runs: list[Json], met: Iterable[bool]) -> Json | None:
    if not runs:
        return None
    probes = []
    for run, ok in zip(runs, met, strict=True):
        probes.append({**run, "tolerance_met": ok})
    return {"steady_state_met": all(p["tolerance_met"] for p in probes), "probes": probes}


def _captured(run: Json) -> bool:
    """A baseline probe meets its tolerance when it captured at least one value (a category
    without traffic before the deployment, e.g. WebSockets on pre-hybrid, has none)."""
    values = (run["output"] or {}).get("values") or {}
    return run["status"] == "succeeded" and any(v is not None for v in values.values())


def _declared(runs: Iterable[Json]) -> list[Json]:
    """Each activity once, as the experiment would declare it."""
    seen: dict[str, Json] = {}
    for run in runs:
        seen.setdefault(run["activity"]["name"], run["activity"])
    return list(seen.values())


def export_drill(name: str, events: Sequence[Json], source: str) -> Json:
    """One drill's events as a Chaos Toolkit journal."""
    runs = _runs(events)
    before = [r for k, r in runs if k == "baseline"]
    after = [r for k, r in runs if k == "check"]
    rollbacks = [r for k, r in runs if k in _ROLLBACKS]
    method = [r for k, r in runs if k not in _ROLLBACKS | {"baseline", "check"}]
    steady_before = _state(before, (_captured(r) for r in before))
    steady_after = _state(after, (r["status"] == "succeeded" for r in after))
    failed = any(r["status"] == "failed" for r in method + rollbacks) or any(
        "failed" in str(ev.get("reason", "")) for ev in events if ev["kind"] == "diagnostics"
    )
    interrupted = any("interrupted" in " ".join(r.get("exception", [])) for _, r in runs)
    start, end = float(events[0]["wall"]), float(events[-1]["wall"])
    experiment = {
        "version": "1.0.0",
        "title": name,
        "description": f"rollback drill {name}, exported from {source}",
        "tags": ["rollback-drill"],
        "steady-state-hypothesis": {
            "title": "the pre-hybrid baseline is captured, then the checklist holds",
            "probes": _declared(before + after),
        },
        "method": _declared(method),
        "rollbacks": _declared(rollbacks),
        "extensions": [{"name": "rollback-drill", "journal": source, "events": len(events)}],
    }
    return {
        "chaoslib-version": "n/a (exported by rollback-drill, not run by chaoslib)",
        "platform": "unknown",
        "node": "unknown",
        "experiment": experiment,
        "start": _iso(start),
        "end": _iso(end),
        "duration": end - start,
        "status": "interrupted" if interrupted else ("failed" if failed else "completed"),
        "deviated": steady_after is not None and not steady_after["steady_state_met"],
        "steady_states": {"before": steady_before, "after": steady_after, "during": []},
        "run": method,
        "rollbacks": rollbacks,
    }


def export(events: Sequence[Json], source: str = "journal.jsonl") -> list[Json]:
    """One Chaos Toolkit journal per drill of the run."""
    return [export_drill(name, evs, source) for name, evs in _drills(events)]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text.rpartition("::")[2]).strip("-")[:60] or "drill"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """The ``export-chaostoolkit`` subcommand."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "export-chaostoolkit",
        help="a run's journal.jsonl as Chaos Toolkit journal(s)",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    p.add_argument("journal", type=Path, help="a run's journal.jsonl")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("journal.json"),
        help="output (journal.json); several drills: <stem>-<n>-<drill>.json each",
    )
    p.add_argument("--drill", default=None, help="only drills whose name contains this")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    try:
        journals = export(read_events(args.journal), str(args.journal))
    except DrillError as exc:
        print(f"rollback-drill: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.drill is not None:
        journals = [j for j in journals if args.drill in j["experiment"]["title"]]
        if not journals:
            print(
                f"rollback-drill: {args.journal}: no drill matches {args.drill!r}", file=sys.stderr
            )
            return 2
    out: Path = args.output
    for n, journal in enumerate(journals, 1):
        path = out
        if len(journals) > 1:
            path = out.with_name(f"{out.stem}-{n}-{_slug(journal['experiment']['title'])}.json")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(journal, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            print(f"rollback-drill: {path}: cannot write: {exc}", file=sys.stderr)
            return 2
        print(f"{path}: {journal['experiment']['title']} ({journal['status']})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rollback-drill")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(["export-chaostoolkit", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
