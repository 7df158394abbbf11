"""The Server-Sent Events format of GET /v1/feed/, shared by every server that streams it."""

import json
from datetime import UTC, datetime
from urllib.parse import parse_qs

DEFAULT_EVENTS = 5
DEFAULT_EVERY_MS = 200
MAX_EVENTS = 50
MAX_EVERY_MS = 2000


def parse_params(query_string):
    """``?events=N&every_ms=M`` (clamped); bad values fall back to the defaults."""
    qs = parse_qs(query_string)

    def one(name, default, top):
        try:
            return max(0, min(int(qs.get(name, [default])[0]), top))
        except ValueError:
            return default

    return one("events", DEFAULT_EVENTS, MAX_EVENTS), one(
        "every_ms", DEFAULT_EVERY_MS, MAX_EVERY_MS
    )


def event(seq):
    data = json.dumps({"seq": seq, "at": datetime.now(UTC).isoformat()})
    return f"id: {seq}\nevent: tick\ndata: {data}\n\n".encode()


def done(count):
    return f"event: done\ndata: {json.dumps({'events': count})}\n\n".encode()


HEADERS = {
    "Cache-Control": "no-cache",
    # nginx would otherwise buffer the stream (the v1 proxy config has no proxy_buffering off)
    "X-Accel-Buffering": "no",
}
CONTENT_TYPE = "text/event-stream; charset=utf-8"
