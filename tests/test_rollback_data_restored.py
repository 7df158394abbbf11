"""Phase 4's data check, without Docker: what a rollback of migrations did not restore."""

from __future__ import annotations

from rollback_drill.migrations_check import TableState
from rollback_drill.rollback.data_restored import unrestored


def table(columns: tuple[str, ...], rows: dict[str, dict[str, str]]) -> TableState:
    return TableState("chat_session_chatsession", columns, ("id",), rows)


def test_a_column_dropped_with_its_data_and_recreated_by_the_rollback_is_named() -> None:
    backup = {"t": table(("id", "title", "updated_at"), {"1": {"title": "a", "updated_at": "x"}})}
    # the deployment dropped updated_at (0012); the load wrote row 2 and set a new transport
    before = {
        "t": table(
            ("id", "title", "transport"),
            {"1": {"title": "a", "transport": "h"}, "2": {"title": "b", "transport": "h"}},
        )
    }
    # the rollback re-created updated_at (filled with "now") and dropped transport
    after = {
        "t": table(
            ("id", "title", "updated_at"),
            {"1": {"title": "a", "updated_at": "now"}, "2": {"title": "b", "updated_at": "now"}},
        )
    }
    lost = unrestored(backup, before, after)
    assert [(x.column, x.rows) for x in lost] == [("updated_at", 1)]
    assert "re-created" in lost[0].how


def test_a_reversible_rollback_loses_nothing_and_load_writes_are_not_losses() -> None:
    backup = {"t": table(("id", "title"), {"1": {"title": "a"}})}
    before = {"t": table(("id", "title", "transport"), {"1": {"title": "a", "transport": "h"}})}
    # the load changed a title while Phase 4 ran: a write, not a loss of the rollback's
    after = {"t": table(("id", "title"), {"1": {"title": "changed"}, "2": {"title": "c"}})}
    assert unrestored(backup, before, after) == []
