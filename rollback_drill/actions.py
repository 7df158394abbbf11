"""What one request of each endpoint category does on a target, as its traffic profile says
(:mod:`rollback_drill.profile`), and how its outcome is classified.

HTTP (and SSE) go through one :class:`~rollback_drill.http1.Http1Pool` (see its docstring for
why not a general client); WebSockets through ``websockets``. Cookies are never kept in a jar:
each virtual user's login is a prebuilt ``Cookie`` header, so users never share or leak
sessions.

Per category:

- ``crud``: one request of the profile's weighted list; a write carries a fresh id and goes
  through the :class:`~rollback_drill.ledger.Ledger` (acknowledged by the profile's statuses,
  and by the answer echoing the id where the profile says so);
- ``auth``: a fresh login, then the profile's check request with the new session; 401/403 (or
  a login refused) is an auth failure;
- ``admin``: the staff user's page; a redirect to the admin's login page means the staff
  session was not recognised: an auth failure;
- ``streaming``: the whole stream up to the profile's end line (a body that ends before is a
  ``server_error``, a dropped connection a ``connect_error``);
- ``websocket``: handshake with the session cookie, the profile's messages and replies, close;
  any close or drop before the last reply is a ``ws_disconnect``.

A virtual user whose session gets a 401/403 is logged in again before its next request
(re-logins are counted, not recorded as requests).

What is sent and how an answer is judged is :class:`~rollback_drill.exchange.Exchanges`' (no
I/O there): ``locustfile.py`` reads the profile through the same class, so the two clients
send the same requests and classify the same answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlencode, urlsplit

from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.protocol import State
from websockets.typing import Data

from rollback_drill.exchange import Exchanges, Rendered
from rollback_drill.http1 import Http1Pool, Response
from rollback_drill.ledger import Ledger
from rollback_drill.profile import Request, TrafficProfile
from rollback_drill.records import Outcome, classify_handshake
from rollback_drill.traffic import Category, Credentials


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of one action, before timing is attached."""

    outcome: Outcome
    status: int | None = None
    served_by: str | None = None
    release: str | None = None
    failure_cause: str | None = None
    write_id: str | None = None
    delay_s: float | None = None  # the release slowed this answer by this much on purpose


@dataclass(frozen=True, slots=True)
class ActionSettings:
    timeout_s: float = 10.0
    connect_timeout_s: float = 3.0


class _Login:
    """One virtual user's login session: a ready ``Cookie`` header (and CSRF token)."""

    __slots__ = ("credentials", "csrf", "headers", "lock", "valid")

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        self.headers: dict[str, str] = {}
        self.csrf: str | None = None
        self.valid = False
        self.lock = asyncio.Lock()


def _cookies(response: Response, jar: SimpleCookie | None = None) -> SimpleCookie:
    jar = jar if jar is not None else SimpleCookie()
    for raw in response.cookies:
        with contextlib.suppress(CookieError):
            jar.load(raw)
    return jar


def _delay_s(header: str | None) -> float | None:
    """A delay header in milliseconds, in seconds (None when absent or not a number)."""
    if header is None:
        return None
    try:
        return float(header) / 1000
    except ValueError:
        return None


class Actions:
    """Runs one request of a category against ``base_url``; never raises for HTTP failures."""

    def __init__(
        self,
        base_url: str,
        http: Http1Pool,
        *,
        profile: TrafficProfile,
        user: Credentials,
        staff: Credentials | None,
        ledger: Ledger,
        virtual_users: int = 4,
        settings: ActionSettings | None = None,
    ) -> None:
        base = base_url.rstrip("/")
        self._base = base
        self._prefix = urlsplit(base).path  # a target mounted below "/"
        self._ws_base = "ws" + base[4:]
        self._http = http
        self._profile = profile
        self._ledger = ledger
        self._settings = settings or ActionSettings()
        self._users = [_Login(user) for _ in range(max(1, virtual_users))]
        self._staff = _Login(staff) if staff is not None else None
        self._user_cycle = itertools.cycle(self._users)
        self._x = Exchanges(profile, base)
        h = profile.headers
        self._header_names = (
            (h.served_by or "").lower(),
            (h.release or "").lower(),
            (h.failure_cause or "").lower(),
            (h.delay_ms or "").lower(),
        )
        self.relogins = 0
        self._handlers: dict[Category, Callable[[], Awaitable[Result]]] = {
            Category.CRUD: self.crud,
            Category.AUTH: self.auth,
            Category.ADMIN: self.admin,
            Category.STREAMING: self.streaming,
            Category.WEBSOCKET: self.websocket,
        }

    # -- lifecycle ---------------------------------------------------------------------------

    async def setup(self) -> None:
        """Log the virtual users in and fill the captured pools, within the request timeout;
        whatever fails here is retried by the first request that needs it."""
        logins = [*self._users, *([self._staff] if self._staff else [])]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._settings.timeout_s):
                await asyncio.gather(*map(self._ensure, logins), return_exceptions=True)
        self.relogins = 0
        if self._users[0].valid:
            for request in self._x.capturing():
                with contextlib.suppress(OSError, TimeoutError, ValueError, KeyError):
                    async with asyncio.timeout(self._settings.timeout_s):
                        await self._crud_request(request)

    async def run(self, category: Category, request: str | None = None) -> Result:
        """One request (or conversation) of ``category``, classified; ``request`` names one
        CRUD request of the profile (else the mix picks)."""
        handler = self._handlers[category] if request is None else lambda: self.crud(request)
        try:
            async with asyncio.timeout(self._settings.timeout_s):
                return await handler()
        except ConnectionError:  # refused, reset, closed early, no connection in time
            return Result(Outcome.CONNECT_ERROR)
        except TimeoutError:
            return Result(Outcome.TIMEOUT)
        except OSError:
            return Result(Outcome.CONNECT_ERROR)
        except ValueError:  # a malformed answer (HTTP or JSON) from the app
            return Result(Outcome.SERVER_ERROR)

    # -- plumbing ----------------------------------------------------------------------------

    def _result(
        self,
        outcome: Outcome,
        status: int | None,
        headers: Mapping[str, str] | None,
        write_id: str | None = None,
    ) -> Result:
        if headers is None:
            return Result(outcome, status, write_id=write_id)
        served, release, cause, delay = self._header_names
        return Result(
            outcome,
            status,
            headers.get(served) if served else None,
            headers.get(release) if release else None,
            headers.get(cause) if cause else None,
            write_id,
            _delay_s(headers.get(delay)) if delay else None,
        )

    def _classified(self, reply: Response, ok: list[int], write_id: str | None = None) -> Result:
        outcome = self._x.classify(reply.status, ok)
        return self._result(outcome, reply.status, reply.headers, write_id)

    async def _send(
        self,
        method: str,
        path: str,
        login: _Login | None,
        body: bytes | None = None,
        content_type: str = "application/json",
        stop_at: bytes | None = None,
    ) -> Response:
        headers: dict[str, str] | None = login.headers if login is not None else None
        if body is not None:
            headers = {**(headers or {}), "Content-Type": content_type}
            csrf = self._profile.login.csrf
            if login is not None and login.csrf and csrf is not None:
                headers[csrf.header] = login.csrf
        response = await self._http.request(
            method, self._prefix + path, headers=headers, body=body, stop_at=stop_at
        )
        if login is not None and response.status in (401, 403):
            login.valid = False
        return response

    async def _ensure(self, login: _Login, *, relogin: bool = True) -> Result | None:
        """Log ``login`` in when it has no valid session; a Result when that failed."""
        if login.valid:
            return None
        async with login.lock:
            if login.valid:
                return None
            flow = self._profile.login
            jar: SimpleCookie = SimpleCookie()
            if flow.form:
                page = await self._send("GET", flow.path, None)
                if page.status != 200:
                    return self._classified(page, [200])
                _cookies(page, jar)
                try:
                    fields = self._x.login_fields(login.credentials, page.body)
                except LookupError:
                    return self._result(Outcome.SERVER_ERROR, page.status, page.headers)
                login.headers = {"Cookie": "; ".join(f"{k}={m.value}" for k, m in jar.items())}
                body = urlencode(fields).encode()
                reply = await self._send(
                    "POST", flow.path, login, body, "application/x-www-form-urlencoded"
                )
            else:
                fields = self._x.login_fields(login.credentials)
                reply = await self._send("POST", flow.path, None, json.dumps(fields).encode())
            self.relogins += relogin
            cookies = _cookies(reply, jar)
            outcome = self._x.login_outcome(reply.status, cookies.keys())
            if outcome is not None:
                login.headers = {}
                return self._result(outcome, reply.status, reply.headers)
            login.headers = {"Cookie": "; ".join(f"{k}={m.value}" for k, m in cookies.items())}
            csrf = cookies.get(flow.csrf.cookie) if flow.csrf is not None else None
            login.csrf = csrf.value if csrf is not None else None
            login.valid = True
            return None

    def _user(self) -> _Login:
        return next(self._user_cycle)

    # -- categories --------------------------------------------------------------------------

    async def crud(self, name: str | None = None) -> Result:
        return await self._crud_request(self._x.next_crud(name))

    async def _crud_request(self, request: Request) -> Result:
        login = self._user()
        failed = await self._ensure(login)
        if failed is not None:
            return failed
        rendered = self._x.render(request)
        if request.write is not None:
            return await self._write(login, rendered)
        reply = await self._send(rendered.method, rendered.path, login, rendered.json_body())
        self._x.observe(request, reply.status, reply.body)
        return self._classified(reply, request.status)

    async def _write(self, login: _Login, rendered: Rendered) -> Result:
        """A write through the ledger (see :meth:`Exchanges.settle`)."""
        attempt = self._x.attempt(self._ledger, rendered)
        try:
            reply = await self._send(rendered.method, rendered.path, login, rendered.json_body())
        except BaseException as exc:  # timeout, connection error, cancellation: no answer
            self._x.unanswered(self._ledger, attempt, exc)
            raise
        self._x.settle(self._ledger, rendered, attempt, reply.status, reply.body)
        return self._classified(reply, rendered.request.status, attempt.client_id)

    async def auth(self) -> Result:
        spec = self._profile.categories.auth
        login = _Login(self._users[0].credentials)
        failed = await self._ensure(login, relogin=False)  # this login is the request itself
        if failed is not None or spec is None or spec.check is None:
            return failed or Result(Outcome.OK, 200)
        check = self._x.render(spec.check)
        reply = await self._send(check.method, check.path, login)
        return self._classified(reply, spec.check.status)

    async def admin(self) -> Result:
        spec = self._profile.categories.admin
        if self._staff is None or spec is None:
            raise LookupError("the admin category needs staff credentials and an admin page")
        failed = await self._ensure(self._staff)
        if failed is not None:
            return failed
        reply = await self._send("GET", spec.path, self._staff)
        if self._x.admin_refused(reply.status, reply.headers.get("location", "")):
            self._staff.valid = False
            return self._result(Outcome.AUTH_FAILURE, reply.status, reply.headers)
        return self._classified(reply, spec.status)

    async def streaming(self) -> Result:
        spec = self._profile.categories.streaming
        if spec is None:
            raise LookupError("this target's profile has no streaming category")
        login = self._user()
        failed = await self._ensure(login)
        if failed is not None:
            return failed
        path = self._x.stream_path()
        reply = await self._send("GET", path, login, stop_at=spec.end.encode())
        if reply.status != 200:
            return self._classified(reply, [200])
        outcome = Outcome.OK if self._x.stream_ended(reply.body) else Outcome.SERVER_ERROR
        return self._result(outcome, reply.status, reply.headers)

    async def websocket(self) -> Result:
        spec = self._profile.categories.websocket
        if spec is None:
            raise LookupError("this target's profile has no websocket category")
        login = self._user()
        failed = await self._ensure(login)
        if failed is not None:
            return failed
        conversation = self._x.websocket()
        url = self._ws_base + conversation.path
        settings = self._settings
        try:
            connection = await ws_connect(
                url,
                additional_headers={**login.headers, **conversation.headers},
                proxy=None,
                open_timeout=settings.connect_timeout_s,
                ping_interval=None,
                close_timeout=1.0,
                compression=None,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                login.valid = False
            outcome = classify_handshake(status)
            return self._result(outcome, status, exc.response.headers)
        except InvalidHandshake:
            return Result(Outcome.CONNECT_ERROR)
        headers: Mapping[str, str] = connection.response.headers if connection.response else {}
        result = self._result(Outcome.OK, 101, headers)
        served_by = result.served_by
        try:
            for i in range(spec.echoes):
                text = conversation.message(i)
                await connection.send(text)
                answer: Data = await connection.recv()
                if not self._x.ws_reply_ok(conversation, text, answer):
                    return self._result(Outcome.SERVER_ERROR, 101, headers)
            await connection.close()
        except ConnectionClosed:
            return Result(Outcome.WS_DISCONNECT, 101, served_by, result.release)
        finally:
            if connection.state is not State.CLOSED:
                connection.transport.abort()  # never leave a socket behind (timeout, cancel)
        return Result(Outcome.OK, 101, served_by, result.release)
