"""The app's Prometheus metrics (docs/app-api.md, ``/metrics``).

Under gunicorn every worker writes its samples to PROMETHEUS_MULTIPROC_DIR
(set, and emptied, by bin/wsgi and bin/asgi before Python starts); the view
merges them. Without that variable the default in-process registry is used.
"""

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    generate_latest,
    multiprocess,
)

# A process not started by bin/wsgi or bin/asgi (a one-off `manage.py` container: a
# deployment's migrate step, run from the new image before it serves) finds no directory yet.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

REQUESTS = Counter("app_requests", "HTTP responses by status and server", ["status", "served_by"])
DB_ERRORS = Counter("app_db_errors", "Requests failed by a lost PostgreSQL connection")
REDIS_ERRORS = Counter("app_redis_errors", "Requests failed by a lost Redis connection")
AUTH_FAILURES = Counter("app_auth_failures", "401 responses and rejected WebSocket handshakes")
CACHE_HITS = Counter("app_cache_hits", "Model API lookups served from the Redis cache")
CACHE_MISSES = Counter("app_cache_misses", "Model API lookups that missed the Redis cache")
WEBSOCKET_EVENTS = Counter(
    "app_websocket_events", "WebSocket accepts, rejects and disconnects", ["event"]
)

DEPENDENCY_ERRORS = {"db-connection": DB_ERRORS, "redis-connection": REDIS_ERRORS}


def exposition() -> tuple[bytes, str]:
    """The metrics text of every process of this server, and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST
