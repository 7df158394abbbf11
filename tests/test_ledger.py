"""The write ledger: canonical checksum, acknowledgement bookkeeping, time queries, JSONL."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest

from rollback_drill.ledger import (
    Ledger,
    UnackedWrite,
    WriteAck,
    canonical_json,
    content_checksum,
)
from rollback_drill.traffic import message_payload, session_payload


def test_canonical_json_is_sorted_compact_and_ascii_like_the_app() -> None:
    fields = {"title": "café ☕", "client_id": "c1", "model": 3}
    canonical = '{"client_id":"c1","model":3,"title":"caf\\u00e9 \\u2615"}'
    assert canonical_json(fields) == canonical
    expected = hashlib.sha256(canonical.encode()).hexdigest()
    assert content_checksum(fields) == expected
    assert content_checksum(dict(reversed(list(fields.items())))) == expected


def test_payloads_have_fresh_client_ids() -> None:
    a, b = session_payload(1), session_payload(1)
    assert a["client_id"] != b["client_id"] and set(a) == {"client_id", "title", "model"}
    assert set(message_payload()) == {"client_id", "role", "content"}


def _ledger() -> tuple[Ledger, list[str]]:
    ledger = Ledger()
    ids = []
    for i in range(4):
        fields = session_payload(model_id=1)
        ids.append(str(fields["client_id"]))
        ledger.attempt("session", fields, sent=100.0 + i)
    message = message_payload()
    ids.append(str(message["client_id"]))
    ledger.attempt("message", message, sent=105.0, parent=ids[0])
    for i in (0, 1):
        checksum = content_checksum(session_payload(1, client_id=ids[i]))
        ledger.acknowledge(ids[i], at=110.0 + i, status=201, server_checksum=checksum)
    ledger.acknowledge(ids[4], at=115.0, status=200, server_checksum="bad")
    ledger.fail(ids[2], at=112.0, reason="TimeoutError")
    return ledger, ids  # ids[3] stays pending


def test_acknowledged_and_unacknowledged_are_kept_apart() -> None:
    ledger, ids = _ledger()
    assert [a.client_id for a in ledger.acked()] == [ids[0], ids[1], ids[4]]
    assert {(u.attempt.client_id, u.reason) for u in ledger.unacknowledged()} == {
        (ids[2], "TimeoutError"),
        (ids[3], "pending"),
    }
    assert len(ledger) == 5
    assert [a.client_id for a in ledger.checksum_mismatches()] == [ids[4]]
    message = ledger.acked()[-1]
    assert message.attempt.kind == "message" and message.attempt.parent == ids[0]


def test_time_queries() -> None:
    ledger, ids = _ledger()
    assert [a.client_id for a in ledger.acked_before(111.0)] == [ids[0]]
    assert [a.client_id for a in ledger.acked_after(111.0)] == [ids[1], ids[4]]


def test_unknown_client_id_is_an_error() -> None:
    with pytest.raises(KeyError):
        Ledger().acknowledge("nope", at=1.0, status=201, server_checksum=None)


def test_save_load_round_trip(tmp_path: Path) -> None:
    ledger, _ = _ledger()
    path = tmp_path / "ledger.jsonl"
    ledger.save(path)
    loaded = Ledger.load(path)
    assert loaded.acked() == ledger.acked()
    assert loaded.unacknowledged() == ledger.unacknowledged()
    assert all(isinstance(a, WriteAck) for a in loaded.acked())
    assert all(isinstance(u, UnackedWrite) for u in loaded.unacknowledged())
    # the checksum recomputed from the saved fields is the one saved
    assert all(content_checksum(a.attempt.fields) == a.attempt.checksum for a in loaded.acked())


def test_load_rejects_an_unknown_state(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_text('{"state": "maybe", "attempt": {"kind": "session"}}\n')
    with pytest.raises(ValueError, match=r"ledger.jsonl:1: unknown ledger state 'maybe'"):
        Ledger.load(path)


def test_checksum_is_the_apps_own() -> None:
    """Same bytes as the reference app's chat_session/checksum.py (guards against drift)."""
    path = Path(__file__).resolve().parent.parent / "compose/app/chat_session/checksum.py"
    if not path.exists():
        pytest.skip(f"{path} not in this checkout")
    spec = importlib.util.spec_from_file_location("app_checksum", path)
    assert spec is not None and spec.loader is not None
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    for fields in (
        app.session_fields("0b6e2a4c-6f8e-4e8e-9c39-2f1f0c1f2a10", "drill café ☕", 7),
        app.message_fields("c9d7f5b2-1b7e-4a57-8d51-5a4e6e0c2b11", "user", 'hé\n"quoted"'),
        session_payload(3),
        message_payload(),
    ):
        assert content_checksum(fields) == app.checksum(fields)
