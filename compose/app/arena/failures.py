"""Turn a lost PostgreSQL or Redis connection into a 503 that names its cause."""

import logging
import sys

import redis
from django import db
from django.http import JsonResponse

from arena import metrics

DB_ERRORS = (db.OperationalError, db.InterfaceError)
REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

log = logging.getLogger(__name__)


def failure_cause(exc: BaseException | None) -> str | None:
    """``db-connection``, ``redis-connection`` or None for any other exception."""
    if isinstance(exc, DB_ERRORS):
        return "db-connection"
    if isinstance(exc, REDIS_ERRORS):
        return "redis-connection"
    return None


def count_failure(exc: BaseException | None) -> str | None:
    """Count and log a dependency failure; its cause, or None for other errors."""
    cause = failure_cause(exc)
    if cause is not None:
        metrics.DEPENDENCY_ERRORS[cause].inc()
        log.warning("%s: %s: %s", cause, type(exc).__name__, exc)
    return cause


def failure_response(exc: BaseException | None) -> JsonResponse | None:
    """A counted 503 for a dependency failure; None when ``exc`` is something else."""
    cause = count_failure(exc)
    if cause is None:
        return None
    response = JsonResponse({"error": "service unavailable", "cause": cause}, status=503)
    response["X-Failure-Cause"] = cause
    return response


class CountWebSocketFailures:
    """ASGI wrapper: a WebSocket handshake that dies on a lost Redis or PostgreSQL
    connection (Channels loads the session and the user) is counted too; the
    server still answers it with a 500."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        try:
            return await self.app(scope, receive, send)
        except Exception as exc:
            count_failure(exc)
            raise


def server_error(request):
    """handler500. Middleware errors (a session save to a dead Redis) end here.

    Django calls it inside the ``except`` block that caught the error (under
    ASGI too: asgiref re-raises it in the worker thread), so sys.exc_info()
    still holds the exception.
    """
    return failure_response(sys.exc_info()[1]) or JsonResponse(
        {"error": "internal server error"}, status=500
    )


def not_found(request, exception):
    """handler404: JSON like the rest of the API."""
    return JsonResponse({"error": "not found"}, status=404)
