"""Tests of ``rollback-drill export-chaostoolkit``: a synthetic journal and two real ones (a
quick-drill run, committed under tests/data/journals/) become Chaos Toolkit journals whose keys
and types are those chaostoolkit-lib writes (chaoslib/run.py, activity.py, hypothesis.py)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from rollback_drill.chaostoolkit import export, main, read_events
from tests.paths import REPO_ROOT

REAL = sorted((REPO_ROOT / "tests" / "data" / "journals").glob("*.jsonl"))


def _ev(kind: str, name: str, wall: float, **data: Any) -> dict[str, Any]:
    return {"kind": kind, "name": name, "wall": wall, "mono": wall - 1000.0, **data}


def _step(kind: str, name: str, start: float, end: float, **end_data: Any) -> list[dict[str, Any]]:
    status = "failed" if "error" in end_data else "ok"
    return [
        _ev(kind, name, start, phase="start"),
        _ev(kind, name, end, phase="end", status=status, duration_s=end - start, **end_data),
    ]


SYNTHETIC = [
    _ev("drill", "drills/test_x.py::test_crash", 1000.0, phase="start"),
    *_step("stack", "up", 1001.0, 1010.0, base_url="http://127.0.0.1:1"),
    _ev("baseline", "captured", 1040.0, values={"p95@category:crud": 0.02}, problems=[]),
    _ev("fault", "hybrid-crashing-asgi", 1041.0, phase="applied"),
    _ev("decision", "asgi_restarts", 1050.0, decision="rollback", measured_value=6.0),
    _ev("rollback", "1->2", 1051.0, phase="start", reason="asgi_restarts", budget_s=300),
    _ev("phase", "phase-1", 1051.5, phase="start", title="Immediate"),
    *_step("rollback", "phase1.stop", 1052.0, 1053.0, cmd="docker compose stop backend-asgi"),
    _ev("phase", "phase-1", 1054.0, phase="end", status="ok", duration_s=2.5, title="Immediate"),
    _ev("rollback", "1->2", 1060.0, phase="end", status="ok", duration_s=9.0),
    *_step("check", "error_rate_below_1pct", 1061.0, 1062.0),
    *_step("check", "p95_back_to_baseline", 1062.0, 1063.0, error="CheckFailed: 2.3x"),
    _ev("drill", "drills/test_x.py::test_other", 1100.0, phase="start"),
    _ev("stack", "up", 1101.0, phase="start"),  # never ended: interrupted
]


def _iso(value: Any) -> None:
    assert isinstance(value, str)
    assert datetime.fromisoformat(value).tzinfo is not None


def _validate_run(run: dict[str, Any], *, probe: bool = False) -> None:
    keys = {"activity", "output", "start", "end", "duration", "status"}
    assert keys <= run.keys(), run.keys()
    assert run["status"] in ("succeeded", "failed")
    assert ("exception" in run) == (run["status"] == "failed")
    if "exception" in run:
        assert isinstance(run["exception"], list) and all(
            isinstance(x, str) for x in run["exception"]
        )
    _iso(run["start"])
    _iso(run["end"])
    assert isinstance(run["duration"], float) and run["duration"] >= 0
    assert run["output"] is None or isinstance(run["output"], dict)
    activity = run["activity"]
    assert activity["type"] in ("probe", "action") and activity["name"]
    assert activity["provider"]["type"] == "python"
    assert {"module", "func"} <= activity["provider"].keys()
    if probe:
        assert isinstance(run["tolerance_met"], bool)


def _validate(journal: dict[str, Any]) -> None:
    """The keys and types chaostoolkit-lib's journal has (initialize_run_journal and after)."""
    keys = {"chaoslib-version", "platform", "node", "experiment", "start", "end", "duration"}
    keys |= {"status", "deviated", "steady_states", "run", "rollbacks"}
    assert keys <= journal.keys(), keys - journal.keys()
    for key in ("chaoslib-version", "platform", "node"):
        assert isinstance(journal[key], str)
    _iso(journal["start"])
    _iso(journal["end"])
    assert isinstance(journal["duration"], float) and journal["duration"] >= 0
    assert journal["status"] in ("completed", "failed", "aborted", "interrupted")
    assert isinstance(journal["deviated"], bool)
    exp = journal["experiment"]
    assert isinstance(exp["title"], str) and isinstance(exp["description"], str)
    assert isinstance(exp["method"], list) and isinstance(exp["rollbacks"], list)
    assert isinstance(exp["steady-state-hypothesis"]["probes"], list)
    states = journal["steady_states"]
    assert set(states) == {"before", "after", "during"} and states["during"] == []
    for which in ("before", "after"):
        state = states[which]
        if state is not None:
            assert isinstance(state["steady_state_met"], bool)
            for p in state["probes"]:
                _validate_run(p, probe=True)
    for run in journal["run"] + journal["rollbacks"]:
        _validate_run(run)
    json.dumps(journal)  # plain JSON all the way down


def test_synthetic_journal(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in SYNTHETIC) + "\n")
    first, second = export(read_events(path))
    for journal in (first, second):
        _validate(journal)
    assert first["experiment"]["title"] == "drills/test_x.py::test_crash"
    before, after = first["steady_states"]["before"], first["steady_states"]["after"]
    assert before["steady_state_met"] is True
    assert before["probes"][0]["output"]["values"] == {"p95@category:crud": 0.02}
    assert [(p["activity"]["name"], p["tolerance_met"]) for p in after["probes"]] == [
        ("check: error_rate_below_1pct", True),
        ("check: p95_back_to_baseline", False),
    ]
    assert after["probes"][1]["exception"] == ["CheckFailed: 2.3x"]
    assert first["deviated"] is True and first["status"] == "completed"
    assert [r["activity"]["name"] for r in first["run"]] == [
        "stack: up",
        "fault: hybrid-crashing-asgi",
        "decision: asgi_restarts",
    ]
    up = first["run"][0]
    assert up["duration"] == 9.0 and up["output"] == {"base_url": "http://127.0.0.1:1"}
    assert up["start"] == "1970-01-01T00:16:41+00:00"
    assert first["run"][2]["activity"]["type"] == "probe"
    assert [(r["activity"]["name"], r["duration"]) for r in first["rollbacks"]] == [
        ("rollback: 1->2", 9.0),
        ("phase: phase-1", 2.5),
        ("rollback: phase1.stop", 1.0),
    ]
    assert first["rollbacks"][2]["output"] == {"cmd": "docker compose stop backend-asgi"}
    assert first["experiment"]["rollbacks"][0]["name"] == "rollback: 1->2"
    assert first["duration"] == 63.0
    assert second["status"] == "interrupted"
    assert second["run"][0]["status"] == "failed"
    assert second["steady_states"] == {"before": None, "after": None, "during": []}


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_real_journals(path: Path) -> None:
    events = read_events(path)
    journals = export(events, str(path))
    drills = [e for e in events if e["kind"] == "drill" and e.get("phase") == "start"]
    assert [j["experiment"]["title"] for j in journals] == [e["name"] for e in drills]
    for journal in journals:
        _validate(journal)
        assert journal["run"], "every drill brings a stack up"
        assert journal["run"][0]["activity"]["name"] == "stack: up"
    by_title = {j["experiment"]["title"].rpartition("::")[2]: j for j in journals}
    hybrid = by_title["test_pre_hybrid_then_hybrid_routing"]
    assert hybrid["status"] == "completed"
    if "test_crash_looping_asgi_rolls_back_config_only" in by_title:
        crash = by_title["test_crash_looping_asgi_rolls_back_config_only"]
        assert crash["status"] == "failed"  # this recording's backup step failed
        failed = [r for r in crash["run"] if r["status"] == "failed"]
        assert failed[0]["activity"]["name"] == "backup: procedure"
        assert "BackupError" in failed[0]["exception"][0]
        assert crash["steady_states"]["before"]["steady_state_met"] is True


def test_command_writes_one_file_per_drill(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    quick = next(p for p in REAL if p.name == "quick-drills.jsonl")
    out = tmp_path / "out" / "journal.json"
    assert main([str(quick), "-o", str(out)]) == 0
    written = sorted(p.name for p in out.parent.iterdir())
    assert len(written) == 3 and written[0].startswith("journal-1-")
    for name in written:
        _validate(json.loads((out.parent / name).read_text()))
    single = tmp_path / "one.json"
    assert main([str(quick), "--drill", "hybrid_routing", "-o", str(single)]) == 0
    assert json.loads(single.read_text())["status"] == "completed"
    capsys.readouterr()
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"kind": "stack"}\nnot json\n')
    assert main([str(broken), "-o", str(tmp_path / "x.json")]) == 10
    assert capsys.readouterr().err.strip().count("\n") == 0  # one line
    assert not (tmp_path / "x.json").exists()
