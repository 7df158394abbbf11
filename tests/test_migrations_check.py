"""The pure parts of ``check-migrations``: snapshot comparison, backward plan, verdicts."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pytest
from paths import REPO_ROOT

from rollback_drill import migrations_check as mc
from rollback_drill.errors import TargetError
from rollback_drill.migrations_check import (
    IRREVERSIBLE,
    NOT_PROVED,
    REVERSIBLE,
    Loss,
    MigrationVerdict,
    TableState,
    step_losses,
    verdict,
)


def table(name: str, columns: tuple[str, ...], rows: dict[str, dict[str, str]]) -> TableState:
    return TableState(name, columns, ("id",), rows)


EXAMPLE = REPO_ROOT / "examples" / "notes" / "target.yaml"
NOTES = ("id", "text", "created_at")
BEFORE = table(
    "notes_note",
    NOTES,
    {
        "1": {"id": "a", "text": "t1", "created_at": "c1"},
        "2": {"id": "b", "text": "t2", "created_at": "c2"},
    },
)


def test_checksum_is_over_the_columns_asked_and_the_row_order_does_not_matter() -> None:
    same = table("notes_note", NOTES, dict(reversed(list(BEFORE.rows.items()))))
    assert same.checksum() == BEFORE.checksum()
    changed = table(
        "notes_note",
        NOTES,
        {"1": {"id": "a", "text": "t1", "created_at": "X"}, "2": dict(BEFORE.rows["2"])},
    )
    assert changed.checksum() != BEFORE.checksum()
    assert changed.checksum(["id", "text"]) == BEFORE.checksum(["id", "text"])


def test_a_step_that_keeps_everything_loses_nothing() -> None:
    snap = {"notes_note": BEFORE}
    assert step_losses(snap, snap, dict(snap)) == ([], [])


def test_changed_values_and_deleted_rows_are_named_by_column_and_count() -> None:
    after = table(
        "notes_note",
        NOTES,
        {"1": {"id": "a", "text": "T1", "created_at": "c1"}},
    )
    losses, dropped = step_losses(
        {"notes_note": BEFORE}, {"notes_note": BEFORE}, {"notes_note": after}
    )
    assert Loss("notes_note", None, 1, "deleted") in losses
    assert Loss("notes_note", "text", 1, "changed") in losses
    assert dropped == []


def test_a_column_the_forward_step_dropped_and_the_backward_step_recreated_empty_is_lost() -> None:
    first = {"notes_note": BEFORE}
    forward = table(
        "notes_note",
        ("id", "text"),
        {k: {"id": r["id"], "text": r["text"]} for k, r in BEFORE.rows.items()}
        | {"3": {"id": "c", "text": "t3"}},  # written by the next release
    )
    back = table(
        "notes_note",
        NOTES,
        {k: {**r, "created_at": "rollback-time"} for k, r in forward.rows.items()},
    )
    losses, _ = step_losses(first, {"notes_note": forward}, {"notes_note": back})
    assert losses == [
        Loss("notes_note", "created_at", 2, "not restored: the column was re-created")
    ]
    assert "notes_note.created_at: 2 row(s)" in losses[0].describe()


def test_a_column_restored_with_its_values_is_no_loss() -> None:
    forward = table("notes_note", ("id", "text"), {"1": {"id": "a", "text": "t1"}})
    back = table("notes_note", NOTES, {"1": dict(BEFORE.rows["1"])})
    assert step_losses({"notes_note": BEFORE}, {"notes_note": forward}, {"notes_note": back}) == (
        [],
        [],
    )


def test_the_next_release_s_own_columns_and_tables_are_dropped_not_lost() -> None:
    prev = table("t", ("id",), {"1": {"id": "a"}})
    nxt = table(
        "t", ("id", "color"), {"1": {"id": "a", "color": "red"}, "2": {"id": "b", "color": "-"}}
    )
    new_table = table("tags", ("id",), {"1": {"id": "x"}})
    losses, dropped = step_losses(
        {"t": prev},
        {"t": nxt, "tags": new_table},
        {"t": table("t", ("id",), {**prev.rows, "2": {"id": "b"}})},
    )
    assert losses == []
    assert mc.Dropped("t", "color", 1) in dropped  # one non-NULL value
    assert mc.Dropped("tags", None, 1) in dropped


def test_a_previous_release_table_dropped_by_the_backward_step_is_lost() -> None:
    snap = {"notes_note": BEFORE}
    losses, _ = step_losses(snap, snap, {})
    assert losses == [Loss("notes_note", None, 2, "lost: the table was dropped")]


def test_django_migrations_is_never_compared() -> None:
    rec = table("django_migrations", ("id", "name"), {"1": {"id": "1", "name": "0002"}})
    assert step_losses({}, {"django_migrations": rec}, {}) == ([], [])


def test_table_rows_compare_the_shared_columns_only() -> None:
    forward = table(
        "notes_note", ("id", "text", "color"), {"1": {"id": "a", "text": "t1", "color": "r"}}
    )
    back = table("notes_note", ("id", "text"), {"1": {"id": "a", "text": "t1"}})
    (row,) = mc.table_rows({"notes_note": forward}, {"notes_note": back})
    assert row["columns_compared"] == ["id", "text"]
    assert row["equal"] is True and row["rows_before"] == row["rows_after"] == 1


def test_the_backward_plan_unapplies_newest_first_to_the_app_s_previous_migration() -> None:
    before = [(1, "notes", "0001_initial"), (2, "accounts", "0001_initial")]
    after = [
        *before,
        (3, "notes", "0002_note_color"),
        (4, "notes", "0003_drop"),
        (5, "accounts", "0002_x"),
    ]
    assert mc.backward_plan(before, after) == [
        ("accounts", "0002_x", "0001_initial"),
        ("notes", "0003_drop", "0002_note_color"),
        ("notes", "0002_note_color", "0001_initial"),
    ]
    assert mc.backward_plan([], [(1, "new", "0001_initial")]) == [("new", "0001_initial", "zero")]


def test_rollback_targets_match_by_number_or_full_name() -> None:
    applied = [(1, "ai_model", "0010_aimodel_options"), (2, "chat_session", "0011_transport")]
    problems = mc.rollback_target_problems({"ai_model": "0010", "chat_session": "0010"}, applied)
    assert problems == {"chat_session": "at 0011_transport, migration_rollback says 0010"}


@pytest.mark.parametrize(
    ("ran", "ok", "output", "losses", "status", "reason"),
    [
        (True, True, "", [], REVERSIBLE, "unapplied"),
        (
            True,
            False,
            "Traceback\ndjango.db.migrations.exceptions.IrreversibleError: Operation "
            "<RunPython <function fill>> in notes.0003 is not reversible\n",
            [],
            IRREVERSIBLE,
            "no reverse operation: django.db.migrations.exceptions.IrreversibleError",
        ),
        (
            True,
            False,
            "psycopg.errors.NotNullViolation: column x\n",
            [],
            IRREVERSIBLE,
            "the reverse raised: psycopg",
        ),
        (
            True,
            True,
            "",
            [Loss("t", "c", 3, "changed")],
            IRREVERSIBLE,
            "data lost: t.c: 3 row(s) changed",
        ),
        (False, False, "", [], NOT_PROVED, "backward stopped before it (x failed)"),
    ],
)
def test_verdict(
    ran: bool, ok: bool, output: str, losses: list[Loss], status: str, reason: str
) -> None:
    got_status, got_reason = verdict(ran, ok, output, losses, "x failed" if not ran else None)
    assert got_status == status
    assert got_reason.startswith(reason)


def test_disagreements_list_where_the_linter_and_the_round_trip_differ() -> None:
    dropped = MigrationVerdict("notes", "0003", IRREVERSIBLE, "data lost: ...", lint_result="ok")
    flagged = MigrationVerdict(
        "notes", "0002", REVERSIBLE, "", lint_result="error", lint=[{"code": "NOT_NULL"}]
    )
    noop = MigrationVerdict(
        "a", "0011", REVERSIBLE, "", lint_result="warning", lint=[{"code": "RUNPYTHON_REVERSIBLE"}]
    )
    found = mc.disagreements([dropped, flagged, noop], phase3_safe=True)
    assert any("notes.0003: the linter found nothing" in d for d in found)
    assert any(
        "notes.0002: the linter calls it backward incompatible (NOT_NULL)" in d for d in found
    )
    assert any("a.0011: the linter calls it irreversible" in d for d in found)
    not_run = MigrationVerdict("x", "1", IRREVERSIBLE, "")
    assert mc.disagreements([not_run], phase3_safe=False) == []
    clean = MigrationVerdict("x", "2", REVERSIBLE, "", lint_result="ok")
    (only,) = mc.disagreements([clean, not_run], phase3_safe=False)
    assert only.startswith("the linter found no backward-incompatible migration in the range")
    assert mc.disagreements([clean, flagged], phase3_safe=False) == []


def test_an_empty_range_proves_nothing_and_says_so() -> None:
    trip = mc.RoundTrip("t", "v1", "v2")
    assert trip.exit_status == 0
    assert "nothing to prove: the forward step applied no migration" in "\n".join(mc.render(trip))


def test_exit_status_and_rendering() -> None:
    trip = mc.RoundTrip(
        "t", "v1", "v2", migrations=[MigrationVerdict("notes", "0002", REVERSIBLE, "ok")]
    )
    assert trip.exit_status == 0
    trip.migrations.append(MigrationVerdict("notes", "0003", IRREVERSIBLE, "data lost: x"))
    assert trip.exit_status == 1
    text = "\n".join(mc.render(trip))
    assert "IRREVERSIBLE migration(s): notes.0003" in text
    assert "static analysis: not run" in text
    assert trip.as_json()["exit_status"] == 1
    assert trip.within_budget is None and "not measured against its budget of 600 s" in text
    trip.backward_s = 601.0
    assert trip.within_budget is False and trip.as_json()["within_phase4_budget"] is False
    trip.migrations[0].dropped.append(mc.Dropped("notes_note", "color", 3))
    assert "dropped the next release's own notes_note.color (3 non-NULL" in "\n".join(
        mc.render(trip)
    )


def test_rows_query_keys_by_primary_key_or_by_the_row_s_own_digest() -> None:
    sql = mc.rows_query('we"ird', ["id", "text"], ["id"])
    assert '"we""ird"' in sql and "coalesce(\"id\"::text, '')" in sql
    assert "row_number() OVER" in mc.rows_query("t", ["a"], [])


def test_release_names_accept_overlays_and_refuse_unknown_ones() -> None:
    from rollback_drill.target import load_target

    target = load_target(EXAMPLE)
    assert mc._release_names(target, None, None) == ("v1", "v2")
    assert mc._release_names(target, "previous", "v2-irreversible") == ("v1", "v2-irreversible")
    with pytest.raises(TargetError, match="no release 'v9'"):
        mc._release_names(target, None, "v9")
    with pytest.raises(TargetError, match="the same release"):
        mc._release_names(target, "v1", "v1")


def test_the_linter_is_staged_readable_for_the_image_s_user(tmp_path: Path) -> None:
    staged = mc.stage_linter(tmp_path / "linter")
    assert (staged / "django_migration_linter" / "migration_linter.py").is_file()
    assert (staged / "appdirs.py").is_file() and (staged / "toml" / "__init__.py").is_file()
    assert all(p.stat().st_mode & 0o004 for p in staged.rglob("*"))


def test_the_command_is_wired() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    mc.add_parser(sub)
    args = parser.parse_args(["check-migrations", "--target", "t.yaml", "--to", "v2-irreversible"])
    assert args.next == "v2-irreversible" and args.previous is None and args.func is mc.run


# ---- the real round trip on the example stack (Docker; ~2.5 min a release: nightly) ---------


def _leftovers(run: str) -> list[str]:
    from rollback_drill.stack import RUN_LABEL, docker_client

    client = docker_client()
    try:
        flt = {"label": f"{RUN_LABEL}={run}"}
        return [
            *(f"container {c.name}" for c in client.containers.list(all=True, filters=flt)),
            *(f"network {n.name}" for n in client.networks.list(filters=flt)),
            *(f"volume {v.name}" for v in client.volumes.list(filters=flt)),
        ]
    finally:
        client.close()


@pytest.mark.docker
@pytest.mark.nightly
@pytest.mark.parametrize("release", ["v2", "v2-irreversible"])
def test_round_trip_on_the_example_stack(
    docker_available: None, tmp_path: Path, release: str
) -> None:
    trip = mc.check_migrations(EXAMPLE, nxt=release, rounds=4, report_root=tmp_path)
    assert trip.failed is None, trip.failed
    assert _leftovers(trip.run_id) == []
    assert not list(Path(tempfile.gettempdir()).glob(f"rbd-{trip.run_id}-*"))
    verdicts = {m.label: m for m in trip.migrations}
    assert verdicts["notes.0002_note_color"].status == REVERSIBLE
    assert trip.acked_writes > 0 and trip.lost_writes == [] and trip.corrupted_writes == []
    assert trip.within_budget is True
    notes = next(row for row in trip.tables if row["table"] == "notes_note")
    assert notes["rows_before"] == notes["rows_after"] > 0
    if release == "v2":
        assert trip.exit_status == 0 and trip.phase3_safe is True
        assert all(row["equal"] for row in trip.tables), trip.tables
    else:
        dropped = verdicts["notes.0003_remove_note_created_at"]
        assert dropped.status == IRREVERSIBLE
        (loss,) = dropped.losses
        assert (loss.table, loss.column) == ("notes_note", "created_at")
        assert loss.rows == trip.snapshot_rows["notes_note"] > 0  # the notes written before
        assert trip.phase3_safe is False and trip.exit_status == 1
        assert "notes.0003_remove_note_created_at" in "\n".join(mc.render(trip))
