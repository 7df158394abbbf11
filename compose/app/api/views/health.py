"""``/api/health/``: PostgreSQL (SELECT 1) and Redis (PING), 503 if either fails."""

import functools
import logging

import redis
from django.conf import settings
from django.db import Error as DatabaseError
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from arena import metrics
from arena.release import release, served_by

log = logging.getLogger(__name__)


@functools.cache
def _redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, **settings.REDIS_OPTIONS)


def _db_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        log.warning("health: PostgreSQL check failed: %s", exc)
        metrics.DB_ERRORS.inc()
        return False
    return True


def _redis_ok() -> bool:
    try:
        _redis_client().ping()
    except redis.RedisError as exc:
        log.warning("health: Redis check failed: %s", exc)
        metrics.REDIS_ERRORS.inc()
        return False
    return True


@require_GET
def health(request):
    db_ok, redis_ok = _db_ok(), _redis_ok()
    body = {
        "status": "ok" if db_ok and redis_ok else "error",
        "db": "ok" if db_ok else "error",
        "redis": "ok" if redis_ok else "error",
        "release": release(),
        "served_by": served_by(request),
    }
    response = JsonResponse(body, status=200 if db_ok and redis_ok else 503)
    # One cause per response; the body tells when both are down.
    if not db_ok:
        response["X-Failure-Cause"] = "db-connection"
    elif not redis_ok:
        response["X-Failure-Cause"] = "redis-connection"
    return response
