"""The no-data-loss checks against a ledger, with the database rows given (no Docker)."""

from __future__ import annotations

import pytest

import rollback_drill.checks.data as data
from rollback_drill.checks.data import StoredWrite, loss_window, no_acked_write_lost
from rollback_drill.ledger import Ledger
from rollback_drill.profile import ReadBack

READ_BACK = [ReadBack(write="session", sql="SELECT 1", columns=["client_id", "title"])]


def ledger_with(acked: dict[str, float], *, parent: str | None = None) -> Ledger:
    ledger = Ledger()
    for cid, at in acked.items():
        fields = {"client_id": cid, "title": f"drill {cid}", "model": 1}
        ledger.attempt("session", fields, sent=at - 0.01, parent=parent)
        ledger.acknowledge(cid, at=at, status=201, server_checksum=None)
    return ledger


def stored(
    ledger: Ledger, *, drop: frozenset[str] = frozenset(), retitle: frozenset[str] = frozenset()
) -> dict[str, StoredWrite]:
    rows: dict[str, StoredWrite] = {}
    for ack in ledger.acked():
        cid = ack.client_id
        if cid in drop:
            continue
        fields = dict(ack.attempt.fields)
        if cid in retitle:
            fields["title"] = "changed"
        rows[cid] = StoredWrite(cid, "session", fields, ack.attempt.checksum)
    return rows


def use_rows(monkeypatch: pytest.MonkeyPatch, rows: dict[str, StoredWrite]) -> None:
    monkeypatch.setattr(data, "read_stored_writes", lambda dsn, read_back: rows)


def test_every_acknowledged_write_present_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = ledger_with({"a": 1.0, "b": 2.0})
    use_rows(monkeypatch, stored(ledger))
    result = no_acked_write_lost("dsn", ledger, READ_BACK)
    assert result.passed and result.measured == {"acked": 2, "missing": 0, "corrupted": 0}


def test_a_missing_write_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = ledger_with({"a": 1.0, "b": 2.0})
    use_rows(monkeypatch, stored(ledger, drop=frozenset({"b"})))
    result = no_acked_write_lost("dsn", ledger, READ_BACK)
    assert (
        not result.passed and result.data["missing_ids"] == ["b"] and "missing: b" in result.detail
    )


def test_a_changed_row_is_corruption_not_presence(monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = ledger_with({"a": 1.0})
    use_rows(monkeypatch, stored(ledger, retitle=frozenset({"a"})))
    result = no_acked_write_lost("dsn", ledger, READ_BACK)
    assert not result.passed and result.data["corrupted_ids"] == ["a"]


def test_no_write_at_all_is_not_a_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    use_rows(monkeypatch, {})
    assert not no_acked_write_lost("dsn", Ledger(), READ_BACK).passed


def test_loss_window_reports_the_lost_ids_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    # dump at t=10, restore done at t=20
    ledger = ledger_with({"old": 5.0, "w1": 12.0, "w2": 15.0, "kept": 11.0, "new": 25.0})
    use_rows(monkeypatch, stored(ledger, drop=frozenset({"w1", "w2"})))
    result = loss_window("dsn", ledger, READ_BACK, dump_started=10.0, restored=20.0)
    assert result.passed
    assert sorted(result.data["lost_ids"]) == ["w1", "w2"]
    assert result.measured["lost_in_window"] == 2 and result.measured["acked_in_window"] == 3


def test_loss_before_the_dump_or_after_the_restore_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = ledger_with({"old": 5.0, "w1": 12.0, "new": 25.0})
    use_rows(monkeypatch, stored(ledger, drop=frozenset({"old", "new"})))
    result = loss_window("dsn", ledger, READ_BACK, dump_started=10.0, restored=20.0)
    assert not result.passed
    assert result.data["lost_before_dump_ids"] == ["old"]
    assert result.data["lost_after_restore_ids"] == ["new"]
