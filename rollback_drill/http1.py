"""A lean HTTP/1.1 keep-alive client for the load generator (asyncio Protocol + httptools).

Why not a general client: the generator must cost less CPU per request than Locust's
FastHttpUser (``bench/README.md``). Measured on this project's 2-core machine, a saturated
client loop did ~600 requests per CPU-second with httpx, ~12,500 with aiohttp and ~37,000
(asyncio) / ~90,000 (uvloop) with this design; inside the whole generator aiohttp came out no
faster than Locust. So the hot path is a small protocol class, and the parsing -- the part that
must be right -- is httptools' C parser (llhttp, the parser of Node.js; maintained with uvloop).

Scope, on purpose: plain ``http://`` to one host:port, requests with small bodies
(``Content-Length``), responses with ``Content-Length``, chunked or close-delimited bodies,
keep-alive with a LIFO pool, no redirects, no cookie jar, no proxies (never reads the
environment), no TLS. Errors are standard exceptions:

    OSError
    ├── ConnectionRefusedError, ConnectionResetError...   from the socket
    └── ConnectionError
        ├── ConnectTimeout          no connection within the connect timeout
        └── ServerDisconnected      closed before the response was complete
    ValueError
    └── MalformedResponse           the parser rejected the answer

A request cancelled or timed out (``asyncio.timeout`` around it) discards its connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, cast

import httptools

_SET_COOKIE: Final = "set-cookie"


class ConnectTimeout(ConnectionError):
    """No TCP connection within the connect timeout."""


class ServerDisconnected(ConnectionError):
    """The connection closed before a complete response."""


class MalformedResponse(ValueError):
    """httptools could not parse the answer."""


@dataclass(slots=True)
class Response:
    """A complete (or, with ``stop_at``, complete up to the marker) response."""

    status: int
    headers: dict[str, str]  # lower-case names; repeats joined with ", "
    body: bytes
    cookies: list[str] = field(default_factory=list)  # raw Set-Cookie values
    complete: bool = True  # False when the body ended (EOF) before its end, or stop_at hit


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    __slots__ = (
        "_body",
        "_header",
        "_parser",
        "_response",
        "_scan_from",
        "_stop_at",
        "_waiter",
        "keep_alive",
        "transport",
    )

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.keep_alive = False
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Response] | None = None
        self._response: Response | None = None
        self._body: list[bytes] = []
        self._header: tuple[str, str] | None = None
        self._stop_at: bytes | None = None
        self._scan_from = 0

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(MalformedResponse("unexpected protocol upgrade"))
        except httptools.HttpParserError as exc:
            self._fail(MalformedResponse(f"malformed HTTP response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.keep_alive = False
        response = self._response
        waiting = self._waiter is not None and not self._waiter.done()
        # a body delimited by the close (no length, not chunked) ends here
        if (
            response is not None
            and response.status
            and waiting
            and not self._parser.should_keep_alive()
        ):
            response.body = b"".join(self._body)
            self._finish(complete=True)
            return
        self._fail(ServerDisconnected("connection closed before the response was complete"))

    # -- httptools callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._response = Response(0, {}, b"")
        self._body = []
        self._scan_from = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self._response is not None
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        if key == _SET_COOKIE:
            self._response.cookies.append(text)
        headers = self._response.headers
        headers[key] = f"{headers[key]}, {text}" if key in headers else text

    def on_headers_complete(self) -> None:
        assert self._response is not None
        self._response.status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)
        if self._stop_at is not None:
            joined = b"".join(self._body)
            self._body = [joined]
            if joined.find(self._stop_at, self._scan_from) >= 0:
                assert self._response is not None
                self._response.body = joined
                self.keep_alive = False  # the rest of the body is still coming: not reusable
                self._finish(complete=False)
            self._scan_from = max(0, len(joined) - len(self._stop_at))

    def on_message_complete(self) -> None:
        if self._response is None or self._waiter is None or self._waiter.done():
            return
        self._response.body = b"".join(self._body)
        self.keep_alive = self._parser.should_keep_alive()
        self._finish(complete=True)

    # -- the client side ---------------------------------------------------------------------

    def send(self, request: bytes, stop_at: bytes | None) -> asyncio.Future[Response]:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._response = None
        self._stop_at = stop_at
        self.keep_alive = False
        self.transport.write(request)
        return self._waiter

    def _finish(self, *, complete: bool) -> None:
        waiter, response = self._waiter, self._response
        if waiter is not None and response is not None and not waiter.done():
            response.complete = complete
            waiter.set_result(response)

    def _fail(self, exc: Exception) -> None:
        self.keep_alive = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        self.keep_alive = False
        if self.transport is not None:
            self.transport.abort()


class Http1Pool:
    """Keep-alive connections to one ``host:port``; any number of concurrent requests."""

    def __init__(self, host: str, port: int, *, connect_timeout_s: float = 3.0) -> None:
        self._host = host
        self._port = port
        literal = f"[{host}]" if ":" in host else host  # an IPv6 address
        self._host_header = f"Host: {literal}:{port}\r\n".encode("latin-1")
        self._connect_timeout = connect_timeout_s
        self._idle: list[_Connection] = []
        self._all: set[_Connection] = set()
        self._closed = False

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, conn = await loop.create_connection(_Connection, self._host, self._port)
        except TimeoutError:
            raise ConnectTimeout(
                f"no connection to {self._host}:{self._port} within {self._connect_timeout} s"
            ) from None
        self._all.add(conn)
        return conn

    async def request(
        self,
        method: str,
        target: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        stop_at: bytes | None = None,
    ) -> Response:
        """Send one request, return its response. ``stop_at``: return as soon as the body
        contains these bytes (``complete`` is then False and the connection is not reused)."""
        if self._closed:
            raise RuntimeError("this Http1Pool is closed")
        conn: _Connection | None = None
        while self._idle:
            candidate = self._idle.pop()
            if candidate.keep_alive and candidate.transport is not None:
                conn = candidate
                break
            self._discard(candidate)
        if conn is None:
            conn = await self._connect()
        head = [f"{method} {target} HTTP/1.1\r\n".encode("latin-1"), self._host_header]
        if headers:
            head.extend(f"{k}: {v}\r\n".encode("latin-1") for k, v in headers.items())
        if body is not None:
            head.append(b"Content-Length: %d\r\n" % len(body))
        head.append(b"\r\n")
        if body:
            head.append(body)
        try:
            response = await conn.send(b"".join(head), stop_at)
        except BaseException:
            self._discard(conn)
            raise
        if conn.keep_alive and not self._closed:
            self._idle.append(conn)
        else:
            self._discard(conn)
        return response

    def _discard(self, conn: _Connection) -> None:
        conn.close()
        self._all.discard(conn)

    async def close(self) -> None:
        """Close every connection, idle or busy."""
        self._closed = True
        for conn in list(self._all):
            conn.close()
        self._all.clear()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports run their connection_lost
