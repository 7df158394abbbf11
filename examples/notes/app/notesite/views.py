from django.db import connection
from django.http import JsonResponse
from django_redis import get_redis_connection

import notesite


def healthz(request):
    """200 when PostgreSQL and Redis both answer, 503 otherwise."""
    body = {"status": "ok", "database": "up", "redis": "up", "version": notesite.__version__}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        body["database"] = "down"
        body["status"] = "degraded"
    try:
        get_redis_connection("default").ping()
    except Exception:
        body["redis"] = "down"
        body["status"] = "degraded"
    return JsonResponse(body, status=200 if body["status"] == "ok" else 503)
