"""``/api/stream/``: server-sent events, ``n`` data events then ``event: end``.

Under ASGI the events come from an async generator, so a slow stream holds no
thread; under WSGI (the pre-hybrid fallback) a sync generator holds one
gunicorn thread for the whole stream.
"""

import asyncio
import json
import time

from django.core.handlers.asgi import ASGIRequest
from django.db import connection
from django.http import StreamingHttpResponse
from django.views.decorators.http import require_GET

from api.http import error, session_required
from arena.release import served_by

MAX_EVENTS, MAX_INTERVAL_MS = 1000, 10000


def _event(seq: int, server: str) -> str:
    return f"data: {json.dumps({'seq': seq, 'served_by': server})}\n\n"


def _end(n: int) -> str:
    return f"event: end\ndata: {json.dumps({'count': n})}\n\n"


def _events(n: int, interval: float, server: str):
    for seq in range(n):
        if seq:
            time.sleep(interval)
        yield _event(seq, server)
    yield _end(n)


async def _aevents(n: int, interval: float, server: str):
    for seq in range(n):
        if seq:
            await asyncio.sleep(interval)
        yield _event(seq, server)
    yield _end(n)


@require_GET
@session_required
def stream(request):
    try:
        n = int(request.GET.get("n", 5))
        interval_ms = int(request.GET.get("interval_ms", 50))
    except ValueError:
        return error(400, "n and interval_ms must be integers")
    if not (0 <= n <= MAX_EVENTS and 0 <= interval_ms <= MAX_INTERVAL_MS):
        return error(400, f"0 <= n <= {MAX_EVENTS} and 0 <= interval_ms <= {MAX_INTERVAL_MS}")
    if isinstance(request, ASGIRequest):
        # The events need no database. Django would keep the connection that
        # the login check took until the last event: a few open streams would
        # drain the connection pool. Closing hands it back to the pool.
        connection.close()
        generate = _aevents
    else:
        generate = _events
    response = StreamingHttpResponse(
        generate(n, interval_ms / 1000, served_by(request)), content_type="text/event-stream"
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response
