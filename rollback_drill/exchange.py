"""What one request of each category is, and what its answer means -- without any I/O.

A traffic profile (:mod:`rollback_drill.profile`) is data; this module is its one reading,
shared by every client that speaks it: the asyncio generator's
:class:`~rollback_drill.actions.Actions` (its own HTTP/1 client, ``websockets``' asyncio
client) and ``locustfile.py`` (Locust's gevent HTTP client, ``websockets``' sync client).
Each client does the sending, the timing and the cookies in its own world; what is sent and
how the answer is judged comes from here, so the two cannot drift apart:

- :class:`Exchanges` -- one client's state of the profile: the CRUD sub-mix (smooth weighted
  round-robin), the per-category counters behind ``{n}``/``{room}``, and the pools (ids of
  acknowledged writes, values captured from answers), with the rendered request
  (:class:`Rendered`) of a template;
- the judgements: an HTTP status against the statuses a request expects (:meth:`Exchanges.
  classify`), a login's answer (:meth:`Exchanges.login_outcome`), the admin page's redirect to
  its login (:meth:`Exchanges.admin_refused`), a stream's end line (:meth:`Exchanges.
  stream_ended`), a WebSocket reply (:meth:`Exchanges.ws_reply_ok`), and a write's
  acknowledgement, recorded in the :class:`~rollback_drill.ledger.Ledger`
  (:meth:`Exchanges.attempt` / :meth:`Exchanges.settle`).

Not thread-safe: one instance per event loop (the generator) or per gevent process (Locust's
greenlets switch only on I/O, never inside these methods).
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Final

from rollback_drill.ledger import Ledger, WriteAttempt
from rollback_drill.profile import (
    Request,
    TrafficProfile,
    WebSocket,
    captured,
    fill,
    fill_body,
    template_values,
)
from rollback_drill.records import Outcome, classify_status
from rollback_drill.traffic import Credentials, SmoothRoundRobin

__all__ = ["Exchanges", "Rendered", "WsConversation"]

POOL_SIZE: Final = 256
CAPTURE_REFRESH: Final = 100  # re-read a captured pool every this many answers


@dataclass(frozen=True, slots=True)
class Rendered:
    """A profile request with its templates filled: what goes on the wire."""

    request: Request
    method: str
    path: str  # relative to the target's base URL
    body: Any  # the JSON body (a write's written fields), or None
    parent: str | None = None  # a write: the id of the write its path belongs to

    def json_body(self) -> bytes | None:
        return None if self.body is None else json.dumps(self.body).encode()


@dataclass(frozen=True, slots=True)
class WsConversation:
    """One WebSocket conversation: where, with which extra headers, what to send."""

    spec: WebSocket
    path: str
    headers: dict[str, str]
    values: dict[str, Any]

    def message(self, i: int) -> str:
        return fill(self.spec.send, {**self.values, "i": i})


class Exchanges:
    """One client's reading of ``profile`` against ``base_url`` (see the module docstring)."""

    def __init__(self, profile: TrafficProfile, base_url: str) -> None:
        self.profile = profile
        self.base = base_url.rstrip("/")
        crud = profile.categories.crud
        self.requests: dict[str, Request] = {r.name: r for r in crud.requests} if crud else {}
        self._crud: SmoothRoundRobin[str] = SmoothRoundRobin(
            {r.name: r.weight for r in crud.requests} if crud else {}
        )
        self.producers = profile.producers()
        self.pools: dict[str, deque[Any]] = {p: deque(maxlen=POOL_SIZE) for p in self.producers}
        self._pool_cycle = 0
        self._answers_seen: dict[str, int] = {}
        self._counters: dict[str, int] = {}
        csrf = profile.login.csrf
        self._csrf_field = re.compile(
            rf'name="{re.escape(csrf.field)}"\s+value="([^"]*)"'
            if csrf is not None and csrf.field
            else r"(?!)"
        )

    # -- what to send ------------------------------------------------------------------------

    def next_crud(self, name: str | None = None) -> Request:
        """The next CRUD request of the sub-mix (or ``name``); one whose pool is still empty
        is replaced by the request that fills it."""
        request = self.requests[name if name is not None else self._crud.next()]
        for _ in range(len(self.requests)):
            empty = [p for p in request.pools() if not self.pools[p]]
            if not empty:
                break
            request = self.producers[empty[0]]
        return request

    def capturing(self) -> list[Request]:
        """The requests that fill a captured pool (sent once at set-up)."""
        return list({id(r): r for r in self.producers.values() if r.capture}.values())

    def count(self, category: str) -> int:
        n = self._counters.get(category, 0) + 1
        self._counters[category] = n
        return n

    def values(self, request: Request, category: str = "crud", rooms: int = 1) -> dict[str, Any]:
        """The template values of one request: the built-ins and a value of each pool it reads."""
        values = template_values(self.base, self.count(category), rooms)
        for pool in request.pools():
            items = self.pools[pool]
            self._pool_cycle += 1
            values[pool] = items[self._pool_cycle % len(items)]
        return values

    def render(self, request: Request, category: str = "crud") -> Rendered:
        values = self.values(request, category)
        path = fill(request.path, values)
        body = None if request.body is None else fill_body(request.body, values)
        parent = None
        if request.write is not None:
            parent = next(
                (str(values[p]) for p in request.pools() if self.producers[p].write == p), None
            )
        return Rendered(request, request.method, path, body, parent)

    def stream_path(self) -> str:
        spec = self.profile.categories.streaming
        if spec is None:
            raise LookupError("this target's profile has no streaming category")
        return fill(spec.path, template_values(self.base, self.count("streaming")))

    def websocket(self) -> WsConversation:
        spec = self.profile.categories.websocket
        if spec is None:
            raise LookupError("this target's profile has no websocket category")
        values = template_values(self.base, self.count("websocket"), spec.rooms)
        headers = {k: fill(v, values) for k, v in spec.headers.items()}
        return WsConversation(spec, fill(spec.path, values), headers, values)

    def login_fields(self, credentials: Credentials, page: bytes | None = None) -> dict[str, str]:
        """The login's fields; a form login's CSRF field read from its ``page``. A page
        without the field: :class:`LookupError`."""
        flow = self.profile.login
        fields = {
            flow.username_field: credentials.username,
            flow.password_field: credentials.password,
        }
        if flow.form and flow.csrf is not None and flow.csrf.field:
            token = self._csrf_field.search((page or b"").decode(errors="replace"))
            if token is None:
                raise LookupError(f"the login page has no {flow.csrf.field!r} field")
            fields[flow.csrf.field] = token.group(1)
        return fields

    # -- what the answer means ---------------------------------------------------------------

    @staticmethod
    def classify(status: int, ok: Collection[int]) -> Outcome:
        """An authenticated request's status; a success the profile does not expect is a
        ``server_error``."""
        outcome = classify_status(status, authenticated=True)
        if outcome is Outcome.OK and status not in ok:
            outcome = Outcome.SERVER_ERROR
        return outcome

    def login_outcome(self, status: int, cookies: Collection[str]) -> Outcome | None:
        """None when a login answered ``status`` setting ``cookies`` (their names, the login
        page's included) succeeded, else its outcome (refused without an error status: an
        ``auth_failure``)."""
        flow = self.profile.login
        session_ok = flow.session_cookie is None or flow.session_cookie in cookies
        if status in flow.ok and cookies and session_ok:
            return None
        outcome = classify_status(status, authenticated=True)
        return Outcome.AUTH_FAILURE if outcome is Outcome.OK else outcome

    def admin_refused(self, status: int, location: str) -> bool:
        """A redirect to the admin's login page: the staff session was not recognised."""
        spec = self.profile.categories.admin
        login_page = spec.login_page if spec is not None else None
        if not login_page:
            return False
        return status in (301, 302) and login_page in location

    def stream_ended(self, body: bytes) -> bool:
        spec = self.profile.categories.streaming
        end = spec.end.encode() if spec is not None else b""
        return any(line.rstrip(b"\r") == end for line in body.split(b"\n"))

    @staticmethod
    def ws_reply_ok(conversation: WsConversation, sent: str, answer: str | bytes) -> bool:
        """The reply to ``sent``: the profile's ``expect`` text, else a JSON echo of it. A
        reply that is not JSON raises ValueError (the caller's ``server_error``)."""
        spec = conversation.spec
        if spec.expect is not None:
            text = answer.decode() if isinstance(answer, bytes) else answer
            return text == fill(spec.expect, conversation.values)
        echo = json.loads(answer)
        return isinstance(echo, dict) and echo.get(spec.echo_field) == sent

    def observe(self, request: Request, status: int, body: bytes) -> None:
        """Feed a read's answer to the pools it captures (every :data:`CAPTURE_REFRESH`-th
        answer, or while one is empty); a malformed JSON answer raises ValueError."""
        if not request.capture or status not in request.status:
            return
        seen = self._answers_seen.get(request.name, 0)
        self._answers_seen[request.name] = seen + 1
        if seen % CAPTURE_REFRESH == 0 or not all(self.pools[p] for p in request.capture):
            answer = json.loads(body)
            for pool, where in request.capture.items():
                self.pools[pool].clear()
                self.pools[pool].extend(captured(answer, where))

    # -- writes through the ledger -----------------------------------------------------------

    def attempt(self, ledger: Ledger, rendered: Rendered) -> WriteAttempt:
        """Register a write about to be sent."""
        request = rendered.request
        assert request.write is not None
        spec = self.profile.ledger
        return ledger.attempt(
            request.write,
            rendered.body,
            sent=time.time(),
            parent=rendered.parent,
            id_field=spec.ack.id_field if spec is not None else "id",
        )

    def settle(
        self, ledger: Ledger, rendered: Rendered, attempt: WriteAttempt, status: int, body: bytes
    ) -> bool:
        """Record a write's answer in ``ledger``: acknowledged by the profile's statuses (and
        the answer echoing the id, where the profile says so) -- then its id fills the write's
        pool -- or failed. True when acknowledged."""
        request = rendered.request
        assert request.write is not None
        spec = self.profile.ledger
        acked = status in (spec.ack.status if spec is not None else request.status)
        checksum: str | None = None
        if acked and spec is not None and (spec.ack.echo_field or spec.ack.checksum_field):
            try:
                answer = json.loads(body)
            except ValueError:
                answer = None
            answer = answer if isinstance(answer, dict) else {}
            if spec.ack.echo_field and str(answer.get(spec.ack.echo_field)) != attempt.client_id:
                acked = False
            if spec.ack.checksum_field:
                checksum = answer.get(spec.ack.checksum_field)
        if acked:
            ledger.acknowledge(
                attempt.client_id, at=time.time(), status=status, server_checksum=checksum
            )
            self.pools[request.write].append(attempt.client_id)
        else:
            ledger.fail(attempt.client_id, at=time.time(), reason=f"http {status}", status=status)
        return acked

    @staticmethod
    def unanswered(ledger: Ledger, attempt: WriteAttempt, exc: BaseException) -> None:
        """A write that got no answer (timeout, connection error, cancellation)."""
        ledger.fail(attempt.client_id, at=time.time(), reason=type(exc).__name__)
