"""This release's ASGI application: the app wrapped by the release's new ASGI-side code.

Configured by ``/app/release_defect.json`` (written into the release when it is built)::

    {"crash":   {"exit_code": 70},
     "ws_drop": {"share": 0.5, "after_messages": 1},
     "slow":    {"delay_ms": 300, "share": 0.1, "paths": ["/api/stream/"]},
     "leak":    {"cap_ratio": 0.965, "step_mb": 8}}

- ``crash``: the new WebSocket code kills the server process on a connection (a native
  extension's abort, as far as Docker can tell): the container exits and its restart policy
  brings it back, until the next connection.
- ``ws_drop``: on exactly ``share`` of the WebSocket connections (every 1/share-th one) the
  server closes the socket with 1011 after ``after_messages`` replies.
- ``slow``: the new async code awaits ``delay_ms`` before serving exactly ``share`` (default:
  all) of the requests of ``paths`` (every 1/share-th one); their answers carry
  ``X-Release-Delay-Ms``, how long the wait really took (a drill tells the slowed requests
  from the others by it).
- ``leak``: every request keeps ``step_mb`` in a process-wide list that is never freed, until
  the container's memory use (as ``docker stats`` counts it: usage minus inactive file cache)
  reaches ``cap_ratio`` of its memory limit -- the size the new response cache was (wrongly)
  configured to grow to.
"""

import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path

from arena.asgi import application as app

log = logging.getLogger("release.defects")
CONFIG = Path(__file__).resolve().parent.parent / "release_defect.json"
CONF = json.loads(CONFIG.read_text()) if CONFIG.is_file() else {}
_hoard: list[bytes] = []
_counts = {"ws": 0, "slow": 0}


def _pick(name: str, share: float) -> bool:
    """Call n of ``name`` is picked when floor(n * share) steps up: exactly ``share``."""
    _counts[name] += 1
    n, num, den = _counts[name], round(share * 100_000), 100_000
    return (n * num) // den > ((n - 1) * num) // den


def _cgroup_memory() -> tuple[int, int]:
    """(usage minus inactive file cache, limit) of this container's memory cgroup."""
    v1 = Path("/sys/fs/cgroup/memory")
    if (v1 / "memory.usage_in_bytes").exists():
        usage = int((v1 / "memory.usage_in_bytes").read_text())
        limit = int((v1 / "memory.limit_in_bytes").read_text())
        stat_file, key = v1 / "memory.stat", "total_inactive_file"
    else:
        root = Path("/sys/fs/cgroup")
        usage = int((root / "memory.current").read_text())
        raw = (root / "memory.max").read_text().strip()
        limit = int(raw) if raw != "max" else 1 << 62
        stat_file, key = root / "memory.stat", "inactive_file"
    for line in stat_file.read_text().splitlines():
        name, _, value = line.partition(" ")
        if name == key and int(value) < usage:
            usage -= int(value)
            break
    return usage, limit


def _leak() -> None:
    leak = CONF.get("leak")
    if not leak:
        return
    usage, limit = _cgroup_memory()
    room = int(leak["cap_ratio"] * limit) - usage
    size = min(int(leak["step_mb"] * (1 << 20)), room)
    if size >= 64 * 1024:
        _hoard.append(b"\x01" * size)


async def application(scope, receive, send):
    _leak()
    kind = scope["type"]
    if kind == "websocket" and "crash" in CONF:
        print(
            "release defect: fatal error in the WebSocket handler, aborting",
            file=sys.stderr,
            flush=True,
        )
        os._exit(int(CONF["crash"].get("exit_code", 70)))
    slow = CONF.get("slow")
    slowed = kind == "http" and slow and scope["path"].startswith(tuple(slow["paths"]))
    if slowed and _pick("slow", slow.get("share", 1.0)):  # counted on the slow paths only
        started = time.perf_counter()
        await asyncio.sleep(slow["delay_ms"] / 1000.0)
        send = _marking(send, f"{(time.perf_counter() - started) * 1000:.3f}")
    drop = CONF.get("ws_drop")
    if kind == "websocket" and drop and _pick("ws", drop["share"]):
        send = _dropping(send, int(drop.get("after_messages", 1)))
    return await app(scope, receive, send)


def _marking(send, delay_ms: str):
    """A ``send`` whose response start carries ``X-Release-Delay-Ms`` (a slowed answer)."""

    async def wrapped(message):
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", []), (b"x-release-delay-ms", delay_ms.encode())]
            message = {**message, "headers": headers}
        return await send(message)

    return wrapped


def _dropping(send, after: int):
    """A ``send`` that closes the socket (1011) after ``after`` messages, then swallows."""
    sent = 0
    closed = False

    async def wrapped(message):
        nonlocal sent, closed
        if closed:
            return None
        if message["type"] == "websocket.send":
            if sent >= after:
                closed = True
                return await send({"type": "websocket.close", "code": 1011})
            sent += 1
        elif message["type"] == "websocket.close":
            closed = True
        return await send(message)

    return wrapped
