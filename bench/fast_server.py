"""A minimal, fast HTTP/1.1 keep-alive server on 127.0.0.1: the benchmark's target.

Run as its own process so that its CPU time is not charged to a load generator::

    python bench/fast_server.py --port 18080 [--delay-ms 50]

- ``POST /api/auth/login/`` -- 200 with a ``sessionid`` cookie (so generators can log in);
- ``GET /__stats`` -- JSON ``{"requests": n, "delayed": k, "handled_p95_us": ...}``: requests
  served so far (the neutral request counter of the benchmark) and the server-side P95 of the
  delayed requests (parse to reply, i.e. the delay as really slept);
- ``POST /__reset`` -- zero the counters;
- any other request -- 200 with a tiny JSON body, at once, or after ``--delay-ms`` (the known,
  fixed delay, kept to within tens of microseconds: see ``_sleep_precisely``).

A raw ``asyncio.Protocol`` (on uvloop when installed): no framework overhead, so that the
server is not the bottleneck of a client benchmark on a 2-core machine. Binds loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import signal
import time
from typing import cast

_BODY = b'{"results":[{"id":1,"name":"bench"}]}'


def _reply(body: bytes = _BODY, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: application/json\r\n"
        b"X-Served-By: bench\r\n"
        b"X-Release: bench\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body
    )


_FAST = _reply()
_LOGIN = _reply(b'{"username":"bench"}', b"Set-Cookie: sessionid=bench; Path=/\r\n")


class _State:
    requests = 0
    delay_s = 0.0
    handled_us: list[int] = []  # noqa: RUF012 - one server per process


class _HttpProtocol(asyncio.Protocol):
    """Parses pipelined or split requests (bodies by Content-Length only)."""

    def __init__(self) -> None:
        self._buf = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._buf += data
        while True:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self._buf[:end]
            length = 0
            lower = head.lower()
            idx = lower.find(b"content-length:")
            if idx >= 0:
                line_end = lower.find(b"\r\n", idx)
                length = int(lower[idx + 15 : line_end if line_end >= 0 else None])
            total = end + 4 + length
            if len(self._buf) < total:
                return
            self._buf = self._buf[total:]
            self._handle(head[: head.find(b"\r\n")].split(b" ")[1])

    def _handle(self, target: bytes) -> None:
        transport = self._transport
        if transport is None:
            return
        if target.startswith(b"/__"):
            transport.write(_admin(target))
            return
        _State.requests += 1
        if target.startswith(b"/api/auth/login/"):
            transport.write(_LOGIN)
        elif _State.delay_s:
            asyncio.get_running_loop().create_task(self._delayed())
        else:
            transport.write(_FAST)

    async def _delayed(self) -> None:
        started = time.perf_counter()
        await _sleep_precisely(started + _State.delay_s)
        handled_us = int((time.perf_counter() - started) * 1e6)
        _State.handled_us.append(handled_us)
        if self._transport is not None:
            self._transport.write(_FAST)


_SPIN_S = 0.002  # both event loops' timers have 1 ms granularity: the last 2 ms are yielded


async def _sleep_precisely(deadline: float) -> None:
    """Sleep until ``deadline`` (perf_counter) to within a few tens of microseconds: a timer
    up to ``_SPIN_S`` before it, then yield to the loop until it passes. A plain
    ``asyncio.sleep`` overslept 50 ms by 0.8 ms at its P95 (1.6 %, most of the +/-2 % the
    benchmark measures against); the spin costs this target CPU, never the generator."""
    early = deadline - _SPIN_S - time.perf_counter()
    if early > 0:
        await asyncio.sleep(early)
    while time.perf_counter() < deadline:
        await asyncio.sleep(0)


def _admin(target: bytes) -> bytes:
    if target.startswith(b"/__reset"):
        _State.requests = 0
        _State.handled_us = []
    handled = sorted(_State.handled_us)
    p95 = handled[max(int(0.95 * len(handled) + 0.5), 1) - 1] if handled else None
    stats = {"requests": _State.requests, "delayed": len(handled), "handled_p95_us": p95}
    return _reply(json.dumps(stats).encode())


async def serve(host: str, port: int) -> None:
    """Serve until SIGTERM/SIGINT."""
    if not ipaddress.ip_address(host).is_loopback:
        raise SystemExit(f"refusing to bind {host}: loopback only")
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_HttpProtocol, host, port, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    print(f"listening on http://{host}:{port}", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="fast loopback HTTP target for benchmarks")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--no-uvloop", action="store_true")
    args = parser.parse_args()
    _State.delay_s = args.delay_ms / 1000.0
    if args.no_uvloop:
        asyncio.run(serve(args.host, args.port))
        return
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.host, args.port))
    else:
        uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
