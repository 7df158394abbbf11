"""Support tickets from outside, for "User complaints spike (> 10 support tickets in 1 hour)".

Two ways in, both optional, both feeding one series:

- a JSON-lines **file**, tailed: one ticket per line, ``{"time": ..., "id": ..., "subject": ...}``.
  Lines already in the file when the collector starts count too (at their own time, so a
  window sees them only if they are recent). A line is read once it ends with a newline; a
  truncated or replaced file is read again from its start (ids keep that from double counting).
  A file that does not exist yet is waited for.
- an **HTTP endpoint** on loopback (``POST /tickets`` with one ticket object or a JSON list of
  them; ``GET /tickets`` answers ``{"count": n}``), served by the standard library's
  ``http.server`` in a thread. Answers 201 with ``{"accepted", "duplicates", "rejected"}``,
  400 if any ticket was malformed (the valid ones are still taken), 404/411/413 otherwise.

Ticket fields: ``time`` is Unix epoch seconds (number or numeric string) or ISO 8601 (naive
means UTC); missing means "when it arrived". ``id``: tickets with an id already seen (from
either source) are duplicates and are not counted again. ``subject`` is kept for the report.

Series: ``tickets`` (one sample of 1.0 per unique ticket, at the ticket's time),
``ticket_duplicates`` and ``ticket_rejects`` (one sample per duplicate / malformed ticket, at
arrival; the reason goes to ``errors``). Count with :meth:`TicketCollector.count`.
"""

from __future__ import annotations

import json
import math
import os
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

from rollback_drill.errors import TargetError
from rollback_drill.signals._net import is_loopback_host
from rollback_drill.signals.base import Collector
from rollback_drill.signals.series import Clock

__all__ = ["Ticket", "TicketCollector", "ticket_epoch"]


@dataclass(frozen=True)
class Ticket:
    id: str | None
    subject: str
    t: float
    """Monotonic time (the series' scale); ``clock.to_datetime(t)`` for the report."""
    source: str


def ticket_epoch(value: object) -> float:
    """A ticket's ``time`` as Unix epoch seconds; ``ValueError`` when it is neither format."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"time must be epoch seconds or ISO 8601, not {value!r}")
    if isinstance(value, str):
        try:
            epoch = float(value)
        except ValueError:
            stamp = datetime.fromisoformat(value.strip())
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=UTC)
            epoch = stamp.timestamp()
    else:
        epoch = float(value)
    if not math.isfinite(epoch):
        raise ValueError(f"time must be finite, not {value!r}")
    return epoch


class TicketCollector(Collector):
    """Tickets from ``path`` (JSON lines, tailed every ``poll_interval`` s) and/or over HTTP.

    ``http``: serve ``POST /tickets`` on ``host:port`` (``port=0``: a free port; see ``url``).
    """

    kind = "tickets"

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        http: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        poll_interval: float = 0.2,
        max_body: int = 1 << 20,
        clock: Clock | None = None,
        retention: float | None = None,
    ) -> None:
        super().__init__(clock=clock, retention=retention)
        if path is None and not http:
            raise ValueError("tickets need a file to tail, the HTTP endpoint, or both")
        if http and not is_loopback_host(host):
            raise TargetError(f"ticket endpoint host {host!r} refused: loopback only")
        self.path = None if path is None else Path(path)
        self.http = http
        self.host = host.strip("[]")
        self.port = port
        self.poll_interval = poll_interval
        self.max_body = max_body
        self._lock = threading.Lock()
        self._ids: set[str] = set()
        self._tickets: list[Ticket] = []
        self._server: HTTPServer | None = None
        self._serving: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The endpoint's URL (known once started)."""
        if self._server is None:
            raise RuntimeError("the ticket endpoint is not serving (not started, or http=False)")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._server.server_port}/tickets"

    @property
    def tickets(self) -> list[Ticket]:
        with self._lock:
            return list(self._tickets)

    def count(self, start: float | None = None, end: float | None = None) -> int:
        """Unique tickets whose time is in the window."""
        return self.series.count("tickets", start, end)

    def add(self, obj: object, source: str = "api") -> str:
        """Take one ticket object; returns ``accepted``, ``duplicate`` or ``rejected``."""
        anchor = self.clock.anchor()  # the mapping now: a ticket stamped "now" is at ``now``
        now = anchor.monotonic
        try:
            if not isinstance(obj, Mapping):
                raise ValueError(f"a ticket is a JSON object, not {type(obj).__name__}")
            raw_time = obj.get("time")
            t = now if raw_time is None else self.clock.from_wall(ticket_epoch(raw_time), anchor)
            raw_id = obj.get("id")
            ticket = Ticket(
                None if raw_id is None else str(raw_id), str(obj.get("subject", "")), t, source
            )
        except ValueError as exc:
            self.series.append("ticket_rejects", now, 1.0)
            self.record_error(f"ticket from {source}", exc)
            return "rejected"
        with self._lock:
            if ticket.id is not None and ticket.id in self._ids:
                duplicate = True
            else:
                duplicate = False
                if ticket.id is not None:
                    self._ids.add(ticket.id)
                self._tickets.append(ticket)
        if duplicate:
            self.series.append("ticket_duplicates", now, 1.0)
            return "duplicate"
        self.series.append("tickets", ticket.t, 1.0)
        return "accepted"

    # -- lifecycle ---------------------------------------------------------------------------

    def _start(self) -> None:
        if self.http:
            server_class = _HTTPServer6 if ":" in self.host else HTTPServer
            self._server = server_class((self.host, self.port), _handler_for(self))
            server = self._server
            self._serving = self.spawn("http", lambda: server.serve_forever(poll_interval=0.2))
        if self.path is not None:
            self.spawn("tail", self._tail)

    def _interrupt(self) -> None:
        if self._server is not None and self._serving is not None:
            self._server.shutdown()  # returns once serve_forever has returned

    def _close(self) -> None:
        if self._server is not None:
            self._server.server_close()

    # -- the file ----------------------------------------------------------------------------

    def _tail(self) -> None:
        assert self.path is not None
        inode, pos, pending, lineno = -1, 0, b"", 0
        while not self.stopping:
            try:
                st = os.stat(self.path)
                if st.st_ino != inode or st.st_size < pos:  # new, replaced or truncated
                    inode, pos, pending, lineno = st.st_ino, 0, b"", 0
                if st.st_size > pos:
                    with open(self.path, "rb") as f:
                        f.seek(pos)
                        data = f.read()
                    pos += len(data)
                    *lines, pending = (pending + data).split(b"\n")
                    for line in lines:
                        lineno += 1
                        self._take_line(line, lineno)
            except FileNotFoundError:
                pass
            except OSError as exc:
                self.record_error(f"tail {self.path}", exc)
            self.account()
            self.wait(self.poll_interval)

    def _take_line(self, line: bytes, lineno: int) -> None:
        if not line.strip():
            return
        try:
            obj = json.loads(line)
        except ValueError as exc:
            self.series.append("ticket_rejects", self.clock.now(), 1.0)
            self.record_error(f"ticket file line {lineno}", exc)
            return
        self.add(obj, f"file line {lineno}")


class _HTTPServer6(HTTPServer):
    address_family = socket.AF_INET6


def _handler_for(collector: TicketCollector) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = 5  # a client that never sends cannot block the (single-threaded) server

        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/tickets":
                self._reply(404, {"error": "POST /tickets"})
                return
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                self._reply(411, {"error": "Content-Length required"})
                return
            if int(length) > collector.max_body:
                self._reply(413, {"error": f"body over {collector.max_body} bytes"})
                return
            try:
                data = json.loads(self.rfile.read(int(length)))
            except ValueError as exc:
                collector.series.append("ticket_rejects", collector.clock.now(), 1.0)
                collector.record_error("ticket over HTTP", exc)
                self._reply(400, {"error": f"not JSON: {exc}"})
                return
            results = [
                collector.add(obj, "http") for obj in (data if isinstance(data, list) else [data])
            ]
            counts = {k: results.count(k) for k in ("accepted", "duplicate", "rejected")}
            body = {
                "accepted": counts["accepted"],
                "duplicates": counts["duplicate"],
                "rejected": counts["rejected"],
            }
            self._reply(400 if counts["rejected"] else 201, body)
            collector.account()

        def do_GET(self) -> None:
            if self.path.rstrip("/") != "/tickets":
                self._reply(404, {"error": "GET /tickets"})
                return
            self._reply(200, {"count": len(collector.tickets)})

        def _reply(self, status: int, body: Mapping[str, Any]) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # no access log on stderr; rejects go to the collector's errors

    return Handler
