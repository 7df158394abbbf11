"""The new request-path code of this release, and its defects.

Configured by ``/app/release_defect.json`` (written into the release when it is built)::

    {"fail":  {"kind": "error" | "db" | "redis" | "auth", "share": 0.12, "paths": [...]},
     "slow":  {"delay_ms": 40, "share": 0.1, "paths": [...]},
     "cache": {"miss_share": 0.8}}

- ``fail``: of the requests whose path starts with one of ``paths``, exactly ``share`` fail
  (a shared counter across gunicorn's worker processes picks every 1/share-th one, so any run
  of n such requests holds floor(n*share) or ceil(n*share) failures) the way this kind of
  failure really surfaces: ``error`` raises in the new code (500), ``db`` is the new
  connection pool running dry (``OperationalError``: 503 ``X-Failure-Cause: db-connection``),
  ``redis`` is redis-py's own pool limit (``ConnectionError("Too many connections")``: 503
  ``redis-connection``), ``auth`` loses the session cookie on the way in (401, or the admin's
  redirect to its login page).
- ``slow``: a blocking call of ``delay_ms`` on exactly ``share`` of the requests of ``paths``
  (default: all of them) -- the new code path some requests take, after the view has answered
  (a post-processing hook: the request holds its gunicorn thread the whole time, as a slow
  call anywhere would). Their answers carry ``X-Release-Delay-Ms``: how long the slow call
  really took (the sleep, its oversleep and the wait for the GIL after it), so a drill can
  tell the slowed requests from the others in one window and model what the slowdown alone
  makes of the P95. After the view rather than before it: a view run after a 20 ms sleep
  shares the GIL with the requests that arrived meanwhile and ran 0.3-2.5 ms slower than the
  same view unslowed (the slowed requests' median over the model's), interference the
  reported delay cannot carry, and it put the CRUD P95 up to 7.6 % above the level modelled
  from the delays.
- ``cache``: the new key scheme salts the model catalogue's cache key on ``miss_share`` of the
  catalogue requests, so those lookups always miss (and write keys nobody reads again).
"""

import fcntl
import json
import logging
import os
import threading
import time
import uuid
from pathlib import Path

import redis
from django import db
from django.conf import settings

log = logging.getLogger("release.defects")
CONFIG = Path(__file__).resolve().parent.parent / "release_defect.json"
COUNTER_DIR = Path(os.environ.get("RELEASE_DEFECT_STATE", "/tmp"))
CATALOGUE_PATHS = ("/api/models/",)
_salted = threading.local()


def _config() -> dict:
    try:
        return json.loads(CONFIG.read_text())
    except FileNotFoundError:
        return {}


class SharedCounter:
    """A counter shared by every process of the container (a locked file)."""

    def __init__(self, name: str) -> None:
        self.path = COUNTER_DIR / f"release-defect-{name}.count"

    def next(self) -> int:
        with open(self.path, "a+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.seek(0)
            n = int(f.read() or 0) + 1
            f.seek(0)
            f.truncate()
            f.write(str(n).encode())
            return n


class Share:
    """Picks exactly ``share`` of the calls: call n is picked when floor(n*share) steps up."""

    def __init__(self, name: str, share: float, scale: int = 100_000) -> None:
        self.num, self.den = round(share * scale), scale
        self.counter = SharedCounter(name)

    def pick(self) -> bool:
        if self.num <= 0:
            return False
        n = self.counter.next()
        return (n * self.num) // self.den > ((n - 1) * self.num) // self.den


class ReleaseDefects:
    def __init__(self, get_response):
        self.get_response = get_response
        cfg = _config()
        self.fail = cfg.get("fail")
        self.slow = cfg.get("slow")
        self.cache = cfg.get("cache")
        self.fail_share = Share("fail", self.fail["share"]) if self.fail else None
        self.slow_share = Share("slow", self.slow.get("share", 1.0)) if self.slow else None
        self.cache_share = Share("cache", self.cache["miss_share"]) if self.cache else None
        log.warning("release defects active: %s", cfg)

    def __call__(self, request):
        path = request.path
        slowed = bool(
            self.slow and path.startswith(tuple(self.slow["paths"])) and self.slow_share.pick()
        )
        if self.fail and path.startswith(tuple(self.fail["paths"])) and self.fail_share.pick():
            kind = self.fail["kind"]
            if kind == "auth":
                request.COOKIES.pop(settings.SESSION_COOKIE_NAME, None)
            elif kind == "db":
                raise db.OperationalError("connection pool exhausted: no connection available")
            elif kind == "redis":
                raise redis.exceptions.ConnectionError("Too many connections")
            else:
                raise RuntimeError("release defect: the new code path failed")
        _salted.on = bool(
            self.cache and path.startswith(CATALOGUE_PATHS) and self.cache_share.pick()
        )
        try:
            response = self.get_response(request)
        finally:
            _salted.on = False
        if slowed:  # the new code's slow call, once the view has answered (see the docstring)
            started = time.perf_counter()
            time.sleep(self.slow["delay_ms"] / 1000.0)
            delay_s = time.perf_counter() - started
            response["X-Release-Delay-Ms"] = f"{delay_s * 1000:.3f}"
        return response


def cache_key(key: str, key_prefix: str, version: int) -> str:
    """The release's cache key scheme (Django's default one, salted where it misses)."""
    if getattr(_salted, "on", False):
        return f"{key_prefix}:{version}:{uuid.uuid4().hex}:{key}"
    return f"{key_prefix}:{version}:{key}"
