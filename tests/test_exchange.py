"""Exchanges: a traffic profile's requests and judgements without I/O -- what the generator's
Actions and locustfile.py both send and conclude. Profiles: the reference target's (JSON login,
captured and written pools, a JSON WebSocket echo) and the example's (form login with a CSRF
field, an echoed write id, an ``expect`` WebSocket reply)."""

from __future__ import annotations

import json

import pytest
from paths import REPO_ROOT
from profiles import REFERENCE_PROFILE

from rollback_drill.exchange import Exchanges
from rollback_drill.ledger import Ledger
from rollback_drill.records import Outcome
from rollback_drill.target import load_target
from rollback_drill.traffic import Credentials

EXAMPLE_PROFILE = load_target(REPO_ROOT / "examples" / "notes" / "target.yaml").traffic
BASE = "http://127.0.0.1:8080"
USER = Credentials("demo", "pw")


def test_a_request_whose_pool_is_empty_is_replaced_by_its_producer() -> None:
    x = Exchanges(REFERENCE_PROFILE, BASE)
    # message_create needs {session}, whose producer session_create needs {model}
    assert x.next_crud("message_create").name == "models_list"
    x.observe(x.requests["models_list"], 200, json.dumps({"results": [{"id": 7}]}).encode())
    assert list(x.pools["model"]) == [7]
    assert x.next_crud("message_create").name == "session_create"
    rendered = x.render(x.next_crud("session_create"))
    assert rendered.body["model"] == 7  # a whole-placeholder string keeps the JSON type
    assert rendered.body["title"] == f"drill {rendered.body['client_id'][:8]}"


def test_an_acknowledged_write_fills_its_pool_and_the_ledger() -> None:
    x, ledger = Exchanges(REFERENCE_PROFILE, BASE), Ledger()
    x.pools["model"].append(1)
    rendered = x.render(x.requests["session_create"])
    attempt = x.attempt(ledger, rendered)
    answer = json.dumps({"checksum": attempt.checksum}).encode()
    assert x.settle(ledger, rendered, attempt, 201, answer)
    assert list(x.pools["session"]) == [attempt.client_id]
    assert ledger.acked()[0].checksum_matches
    message = x.render(x.requests["message_create"])
    assert message.parent == attempt.client_id
    assert message.path == f"/api/sessions/{attempt.client_id}/messages/"


def test_a_write_whose_answer_does_not_echo_its_id_is_not_acknowledged() -> None:
    x, ledger = Exchanges(EXAMPLE_PROFILE, BASE), Ledger()
    rendered = x.render(x.requests["note_create"])
    attempt = x.attempt(ledger, rendered)
    assert not x.settle(ledger, rendered, attempt, 201, b'{"ref": "someone-else"}')
    assert not ledger.acked() and not x.pools["note"]
    assert ledger.unacknowledged()[0].reason == "http 201"


def test_form_login_reads_its_csrf_field_and_needs_the_session_cookie() -> None:
    x = Exchanges(EXAMPLE_PROFILE, BASE)
    page = b'<input type="hidden" name="csrfmiddlewaretoken" value="tok123">'
    fields = x.login_fields(USER, page)
    assert fields == {"username": "demo", "password": "pw", "csrfmiddlewaretoken": "tok123"}
    with pytest.raises(LookupError):
        x.login_fields(USER, b"<form></form>")
    assert x.login_outcome(302, {"csrftoken", "sessionid"}) is None
    assert x.login_outcome(200, {"csrftoken"}) is Outcome.AUTH_FAILURE  # the form again
    assert x.login_outcome(302, {"csrftoken"}) is Outcome.AUTH_FAILURE  # no session
    assert x.login_outcome(500, set()) is Outcome.SERVER_ERROR


@pytest.mark.parametrize(
    ("status", "ok", "outcome"),
    [
        (200, [200], Outcome.OK),
        (204, [200], Outcome.SERVER_ERROR),  # a success the profile does not expect
        (401, [200], Outcome.AUTH_FAILURE),
        (404, [200], Outcome.CLIENT_ERROR),
        (502, [200], Outcome.SERVER_ERROR),
    ],
)
def test_classify(status: int, ok: list[int], outcome: Outcome) -> None:
    assert Exchanges.classify(status, ok) is outcome


def test_admin_stream_and_websocket_judgements() -> None:
    x = Exchanges(REFERENCE_PROFILE, BASE)
    assert x.admin_refused(302, "/admin/login/?next=/admin/")
    assert not x.admin_refused(302, "/elsewhere/")
    assert x.stream_ended(b"data: 1\n\nevent: end\r\ndata: {}\n\n")
    assert not x.stream_ended(b"data: 1\n\n")
    ws = x.websocket()
    assert ws.path == "/ws/chat/drill-1/"  # {room}: the first conversation's counter mod 8
    sent = ws.message(0)
    assert x.ws_reply_ok(ws, sent, json.dumps({"echo": sent}))
    assert not x.ws_reply_ok(ws, sent, json.dumps({"echo": "other"}))
    with pytest.raises(ValueError):
        x.ws_reply_ok(ws, sent, "not json")
    notes = Exchanges(EXAMPLE_PROFILE, BASE).websocket()
    assert notes.headers == {"Origin": BASE}
    assert Exchanges.ws_reply_ok(notes, "ping", b"pong")
