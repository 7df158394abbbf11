from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from rollback_drill.announce import (
    SUBJECT,
    Announcement,
    FileSink,
    WebhookSink,
    sink_from,
)
from rollback_drill.errors import RollbackError, TargetError

STARTED = 1_800_000_000.0


def announcement() -> Announcement:
    return Announcement(
        reason="error rate > 10 % on streaming",
        started=STARTED,
        expected_duration_s=300.0,
        impact="WebSockets unavailable",
    )


def test_the_plans_template_is_filled_with_every_placeholder() -> None:
    text = announcement().render()
    assert text.startswith(f"Subject: {SUBJECT}\n\nTeam,\n")
    assert "We are executing a rollback of the hybrid WSGI+ASGI deployment due to:\n" in text
    assert "error rate > 10 % on streaming" in text
    assert "- Rollback started: " in text and "(start + 5 minutes)" in text
    assert "- Status updates: Every 5 minutes" in text
    assert "Impact:\n- WebSockets unavailable" in text
    # the plan's Rollback Responsibility Matrix
    assert "- DevOps Engineer is executing rollback" in text
    assert "- SRE is monitoring metrics" in text
    assert "- Product Manager is handling user communications" in text
    assert "Will update when rollback is complete." in text
    assert "[" not in text.replace("[URGENT]", "")  # no placeholder left


def test_completion_update_names_duration_and_result() -> None:
    text = announcement().completion(STARTED + 42, "1→2", "all phases within budget")
    assert "(42 s; phases 1→2)" in text and "all phases within budget" in text


def test_file_sink_appends_each_message(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "channel" / "rollback.txt")
    where = sink.send(SUBJECT, announcement().render())
    sink.send(SUBJECT, "second")
    content = sink.path.read_text()
    assert where == f"file {sink.path}"
    assert content.count(f"Subject: {SUBJECT}") == 1 and content.rstrip().endswith("-" * 72)
    assert "second" in content


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []
    status = 204

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        _Hook.received.append(json.loads(self.rfile.read(length)))
        self.send_response(_Hook.status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    _Hook.received, _Hook.status = [], 204
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hooks/rollback"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_webhook_sink_posts_subject_and_text(webhook: str) -> None:
    text = announcement().render()
    where = WebhookSink(webhook).send(SUBJECT, text)
    assert where.startswith("webhook http://127.0.0.1:") and "(204)" in where
    assert _Hook.received == [{"subject": SUBJECT, "text": text}]


def test_webhook_error_status_is_an_error(webhook: str) -> None:
    _Hook.status = 500
    with pytest.raises(RollbackError, match="answered 500"):
        WebhookSink(webhook).send(SUBJECT, "x")


def test_webhook_only_on_loopback() -> None:
    with pytest.raises(TargetError, match="loopback"):
        WebhookSink("http://hooks.example.com/rollback")


def test_sink_from_spec(tmp_path: Path) -> None:
    assert isinstance(sink_from("http://127.0.0.1:9/x"), WebhookSink)
    assert isinstance(sink_from(str(tmp_path / "a.txt")), FileSink)
