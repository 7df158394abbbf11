"""``rollback-drill report``: three runs of the same drills, as JUnit files written here."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from rollback_drill.cli import main
from rollback_drill.report import DrillSummary, RunReport, render_html
from rollback_drill.trends import load_runs, run_report, trends

CASE = """<testcase classname="drills.{cls}" name="{name}" time="60">
<properties>{props}</properties>{tail}</testcase>"""


def junit(when: str, cases: list[tuple[str, str, dict[str, object], str]]) -> str:
    body = "".join(
        CASE.format(
            cls=cls,
            name=name,
            props="".join(f'<property name="{k}" value="{v}"/>' for k, v in props.items()),
            tail=tail,
        )
        for cls, name, props, tail in cases
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><testsuites>'
        f'<testsuite name="pytest" timestamp="{when}">{body}</testsuite></testsuites>'
    )


# (night, TTD error_rate, TTD of the two p95 drills, rollback 1→3 s, phase 1 s, its outcome)
NIGHTS = [
    ("2026-01-03T02:17:00", 4.0, (9.0, 7.0), 50.0, 10.0, ""),
    ("2026-01-04T02:17:00", 6.0, (11.0, 5.0), 130.0, 12.0, '<failure message="over budget"/>'),
    ("2026-01-05T02:17:00", 5.0, (8.0, 6.0), 70.0, 11.0, ""),
]


def write_runs(tmp_path: Path) -> list[Path]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    paths = []
    # written out of order: the report orders runs by their timestamp
    for n, (when, err, (p1, p2), rb, ph1, tail) in reversed(list(enumerate(NIGHTS))):
        cases = [
            (
                "test_triggers",
                "test_error_rate",
                {"trigger": "error_rate", "time_to_detect_s": err, "detect_budget_s": 12.0},
                "",
            ),
            (
                "test_triggers",
                "test_wsgi_p95",
                {"trigger": "wsgi_p95_latency", "time_to_detect_s": p1},
                "",
            ),
            (
                "test_matrix_bands",
                "test_p95_band",
                {"trigger": "wsgi_p95_latency", "time_to_detect_s": p2},
                "",
            ),
            (
                "test_rollback_phases",
                "test_phases_1_3",
                {
                    "phase": "1→3",
                    "time_to_rollback_s": rb,
                    "budget_s": 120.0,
                    "phase:1_s": ph1,
                    "budget:1_s": 60.0,
                    "phase:3_s": rb - ph1,
                    "budget:3_s": 60.0,
                    "plan_defects": "phase3-no-migrate" if n else "",
                },
                tail,
            ),
        ]
        path = tmp_path / f"junit-{n}.xml"
        path.write_text(junit(when, cases))
        paths.append(path)
    return paths


def rows(title: str, tmp_path: Path) -> dict[str, tuple[str, ...]]:
    t = trends(load_runs(write_runs(tmp_path), tmp_path))
    table = next(x for x in t.tables if x.title.startswith(title))
    return {row[0]: row for row in table.rows}


def test_time_to_detect_per_trigger_over_runs(tmp_path: Path) -> None:
    by = rows("Time to detect", tmp_path)
    # trigger, runs, outcomes, timed, median, min, max, budget
    assert by["error_rate"] == ("error_rate", "3", "3 passed", "3", "5.0", "4.0", "6.0", "12.0")
    assert by["wsgi_p95_latency"][1:7] == ("3", "6 passed", "6", "7.5", "5.0", "11.0")


def test_rollback_per_phase_against_budget_defects_and_failures(tmp_path: Path) -> None:
    by = rows("Time to roll back", tmp_path)
    assert by["1→3"] == (
        "1→3",
        "2 passed, 1 failed",
        "3",
        "70.0",
        "50.0",
        "130.0",
        "120.0",
        "1 of 3",
        "1: 11.0/60.0, 3: 59.0/60.0",
    )
    defects = rows("Plan defects", tmp_path)
    assert defects["phase3-no-migrate"][1:4] == (
        "2 of 3",
        "2026-01-04 02:17 junit-1.xml",
        "2026-01-05 02:17 junit-2.xml",
    )
    failed = rows("Drills that failed", tmp_path)
    assert failed == {"test_phases_1_3": ("test_phases_1_3", "ok", "FAIL", "ok")}


def test_series_for_the_plots_follow_the_runs_in_time_order(tmp_path: Path) -> None:
    t = trends(load_runs(write_runs(tmp_path), tmp_path))
    assert [r.label for r in t.runs] == ["junit-0.xml", "junit-1.xml", "junit-2.xml"]
    assert t.ttd_series["error_rate"] == [4.0, 6.0, 5.0]
    assert t.ttd_series["wsgi_p95_latency"] == [8.0, 8.0, 7.0]  # median of the run's two
    assert t.phase_series["1→3"] == [50.0, 130.0, 70.0] and t.budgets["1→3"] == 120.0


def test_tables_html_and_plots(tmp_path: Path) -> None:
    console = Console(record=True, width=200)
    out = tmp_path / "out"
    code = run_report(
        write_runs(tmp_path), html_out=out / "trend.html", plots_dir=out, console=console
    )
    assert code == 0
    text = console.export_text()
    for title in ("Time to detect per trigger", "Time to roll back per phase", "Plan defects"):
        assert title in text
    assert "│ error_rate" in text and "│ 1→3" in text
    for png in ("ttd.png", "phases.png"):
        assert (out / png).read_bytes().startswith(b"\x89PNG")
    page = (out / "trend.html").read_text()
    assert page.count('src="data:image/png;base64,') == 2
    assert "<td>wsgi_p95_latency</td>" in page and '<td class="failed">FAIL</td>' in page


def test_a_run_dir_is_read_from_the_data_its_report_embeds(tmp_path: Path) -> None:
    run_dir = tmp_path / "drill" / "20260106-021700-abcdef0123"
    run_dir.mkdir(parents=True)
    (run_dir / "journal.jsonl").write_text("")
    d = DrillSummary(
        "drills/test_triggers.py::test_error_rate",
        "failed",
        60.0,
        {"trigger": "error_rate", "time_to_detect_s": 9.0},
    )
    report = RunReport("abcdef0123", "now", drills=[d], defects=[{"id": "lock-not-held"}])
    (run_dir / "report.html").write_text(render_html(report))
    runs = load_runs([*write_runs(tmp_path), tmp_path / "drill"], tmp_path)
    assert runs[-1].label == run_dir.name and runs[-1].when == "2026-01-06T02:17:00"
    t = trends(runs)
    assert t.ttd_series["error_rate"] == [4.0, 6.0, 5.0, 9.0]  # failed after detection: timed
    by = {r[0]: r for r in t.tables[1].rows}
    assert by["error_rate"][2] == "3 passed, 1 failed"


def test_an_old_run_dir_falls_back_to_its_journal(tmp_path: Path) -> None:
    run_dir = tmp_path / "20260107-021700-0123456789"
    run_dir.mkdir()
    (run_dir / "journal.jsonl").write_text(
        '{"kind": "drill", "name": "drills/t.py::test_x", "phase": "start"}\n'
        '{"kind": "marker", "name": "decision error_rate", "ttd_s": 3.5}\n'
        '{"kind": "defect", "name": "phase2-wrong-path", "seen_in": "test_x"}\n'
    )
    (run,) = load_runs([run_dir], tmp_path)
    assert run.cases[0].props == {"trigger": "error_rate", "time_to_detect_s": "3.5"}
    assert run.cases[0].outcome == "unknown" and "phase2-wrong-path" in run.defects


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", *map(str, write_runs(tmp_path))]) == 0
    assert "Time to detect per trigger" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "nothing-here")]) == 10
    assert "nothing-here: not found" in capsys.readouterr().err


def test_a_directory_of_junit_files_is_one_night(tmp_path: Path) -> None:
    """The layout `gh run download` leaves: nights/<run id>/drill-junit-<date>-<cell>/*.xml."""
    nights = []
    for n, path in enumerate(sorted(write_runs(tmp_path / "src"))):
        night = tmp_path / "nights" / f"{1000 + n}"
        for cell in range(2):  # two matrix cells, the same night
            dest = night / f"drill-junit-{n}-{cell}" / f"junit-cell{cell}.xml"
            dest.parent.mkdir(parents=True)
            dest.write_text(path.read_text())
        nights.append(night)
    t = trends(load_runs(nights, tmp_path))
    assert [r.label for r in t.runs] == ["1000", "1001", "1002"]
    assert [len(r.cases) for r in t.runs] == [8, 8, 8]
    assert t.ttd_series["error_rate"] == [4.0, 6.0, 5.0]
