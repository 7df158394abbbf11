"""What one request of each endpoint category does, and how its outcome is classified.

HTTP (and SSE) go through one :class:`~rollback_drill.http1.Http1Pool` (see its docstring for
why not a general client); WebSockets through ``websockets`` (its handshake response, hence
``X-Served-By`` and ``X-Release``, is public API). Cookies are never kept in a jar: each
virtual user's login is a prebuilt ``Cookie`` header, so users never share or leak sessions.

Per category (``docs/app-api.md``):

- ``crud``: one request of the CRUD sub-mix (``traffic.CRUD_WEIGHTS``); writes carry a fresh
  uuid ``client_id`` and go through the :class:`~rollback_drill.ledger.Ledger`;
- ``auth``: ``POST /api/auth/login/`` then ``GET /api/auth/me/`` with the new session;
  401/403 on either (valid credentials) is an auth failure;
- ``admin``: ``GET /admin/`` with the staff session; a redirect to the admin login page means
  the staff session was not recognised: an auth failure;
- ``streaming``: the whole SSE body up to ``event: end`` (a body that ends before is a
  ``server_error``, a dropped connection a ``connect_error``);
- ``websocket``: handshake with the session cookie, a few echoes, close; any close or drop
  before the last echo is a ``ws_disconnect``.

A virtual user whose session gets a 401/403 is logged in again before its next request
(re-logins are counted, not recorded as requests).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any, Final
from urllib.parse import urlsplit

from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.protocol import State
from websockets.typing import Data

from rollback_drill.http1 import Http1Pool, Response
from rollback_drill.ledger import Ledger, WriteKind
from rollback_drill.records import Outcome, classify_status
from rollback_drill.traffic import (
    ADMIN_LOGIN_PATH,
    ADMIN_PATH,
    CRUD_WEIGHTS,
    LOGIN_PATH,
    ME_PATH,
    MODELS_PATH,
    SESSIONS_PATH,
    SSE_END,
    STREAM_EVENTS,
    STREAM_INTERVAL_MS,
    WS_ECHOES,
    WS_ROOMS,
    Category,
    Credentials,
    CrudOp,
    SmoothRoundRobin,
    message_payload,
    messages_path,
    model_path,
    session_list_path,
    session_path,
    session_payload,
    stream_path,
    ws_path,
)

_CSRF_COOKIE: Final = "csrftoken"
_KNOWN_SESSIONS: Final = 256
_MODELS_REFRESH: Final = 100
# ops that create a session while no session (or, for a create, a model) is known yet
_CREATE_A_SESSION_FIRST: Final = (
    CrudOp.SESSION_CREATE,
    CrudOp.SESSION_GET,
    CrudOp.MESSAGE_CREATE,
)


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of one action, before timing is attached."""

    outcome: Outcome
    status: int | None = None
    served_by: str | None = None
    release: str | None = None
    failure_cause: str | None = None
    write_id: str | None = None
    delay_s: float | None = None  # the release slowed this answer by this (X-Release-Delay-Ms)


@dataclass(frozen=True, slots=True)
class ActionSettings:
    timeout_s: float = 10.0
    connect_timeout_s: float = 3.0
    stream_events: int = STREAM_EVENTS
    stream_interval_ms: int = STREAM_INTERVAL_MS
    ws_echoes: int = WS_ECHOES


class _Login:
    """One virtual user's login session: a ready ``Cookie`` header (and CSRF token)."""

    __slots__ = ("credentials", "csrf", "headers", "lock", "valid")

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        self.headers: dict[str, str] = {}
        self.csrf: str | None = None
        self.valid = False
        self.lock = asyncio.Lock()


def _result(
    outcome: Outcome,
    status: int | None,
    headers: Mapping[str, str] | None,
    write_id: str | None = None,
) -> Result:
    if headers is None:
        return Result(outcome, status, write_id=write_id)
    return Result(
        outcome,
        status,
        headers.get("x-served-by"),
        headers.get("x-release"),
        headers.get("x-failure-cause"),
        write_id,
        _delay_s(headers.get("x-release-delay-ms")),
    )


def _delay_s(header: str | None) -> float | None:
    """``X-Release-Delay-Ms`` in seconds (None when absent or not a number)."""
    if header is None:
        return None
    try:
        return float(header) / 1000
    except ValueError:
        return None


def _cookies(response: Response) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for raw in response.cookies:
        with contextlib.suppress(CookieError):
            jar.load(raw)
    return jar


def _wall() -> float:
    return time.time()


class Actions:
    """Runs one request of a category against ``base_url``; never raises for HTTP failures."""

    def __init__(
        self,
        base_url: str,
        http: Http1Pool,
        *,
        user: Credentials,
        staff: Credentials | None,
        ledger: Ledger,
        virtual_users: int = 4,
        settings: ActionSettings | None = None,
        crud_weights: Mapping[CrudOp, int] | None = None,
    ) -> None:
        base = base_url.rstrip("/")
        self._prefix = urlsplit(base).path  # a target mounted below "/"
        self._ws_base = "ws" + base[4:]
        self._http = http
        self._ledger = ledger
        self._settings = settings or ActionSettings()
        self._users = [_Login(user) for _ in range(max(1, virtual_users))]
        self._staff = _Login(staff) if staff is not None else None
        self._user_cycle = itertools.cycle(self._users)
        self._crud: SmoothRoundRobin[CrudOp] = SmoothRoundRobin(crud_weights or CRUD_WEIGHTS)
        self._model_ids: list[Any] = []
        self._model_cycle = 0
        self._sessions: deque[str] = deque(maxlen=_KNOWN_SESSIONS)
        self._session_cycle = 0
        self._ws_counter = 0
        self._models_seen = 0
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
        """Log the virtual users in and learn the model ids, within the request timeout;
        whatever fails here is retried by the first request that needs it."""
        logins = [*self._users, *([self._staff] if self._staff else [])]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._settings.timeout_s):
                await asyncio.gather(*map(self._ensure, logins), return_exceptions=True)
        self.relogins = 0
        if self._users[0].valid:
            with contextlib.suppress(OSError, TimeoutError, ValueError):
                async with asyncio.timeout(self._settings.timeout_s):
                    await self._crud_op(CrudOp.MODELS_LIST)

    async def run(self, category: Category) -> Result:
        """One request (or conversation) of ``category``, classified."""
        try:
            async with asyncio.timeout(self._settings.timeout_s):
                return await self._handlers[category]()
        except ConnectionError:  # refused, reset, closed early, no connection in time
            return Result(Outcome.CONNECT_ERROR)
        except TimeoutError:
            return Result(Outcome.TIMEOUT)
        except OSError:
            return Result(Outcome.CONNECT_ERROR)
        except ValueError:  # a malformed answer (HTTP or JSON) from the app
            return Result(Outcome.SERVER_ERROR)

    # -- plumbing ----------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        login: _Login | None,
        body: Mapping[str, object] | None = None,
        stop_at: bytes | None = None,
    ) -> Response:
        headers: dict[str, str] | None = login.headers if login is not None else None
        data: bytes | None = None
        if body is not None:
            data = json.dumps(body).encode()
            headers = {**(headers or {}), "Content-Type": "application/json"}
            if login is not None and login.csrf:
                headers["X-CSRFToken"] = login.csrf
        response = await self._http.request(
            method, self._prefix + path, headers=headers, body=data, stop_at=stop_at
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
            credentials = {"username": login.credentials.username}
            credentials["password"] = login.credentials.password
            reply = await self._send("POST", LOGIN_PATH, None, credentials)
            self.relogins += relogin
            cookies = _cookies(reply)
            if reply.status != 200 or not cookies:
                outcome = classify_status(reply.status, authenticated=True)
                if outcome is Outcome.OK:
                    outcome = Outcome.AUTH_FAILURE  # 2xx/3xx without a session cookie
                return _result(outcome, reply.status, reply.headers)
            login.headers = {"Cookie": "; ".join(f"{k}={m.value}" for k, m in cookies.items())}
            csrf = cookies.get(_CSRF_COOKIE)
            login.csrf = csrf.value if csrf is not None else None
            login.valid = True
            return None

    def _user(self) -> _Login:
        return next(self._user_cycle)

    # -- categories --------------------------------------------------------------------------

    async def crud(self) -> Result:
        return await self._crud_op(self._crud.next())

    async def _crud_op(self, op: CrudOp) -> Result:
        login = self._user()
        failed = await self._ensure(login)
        if failed is not None:
            return failed
        if op is CrudOp.MODEL_DETAIL and self._model_ids:
            self._model_cycle += 1
            model = self._model_ids[self._model_cycle % len(self._model_ids)]
            return self._classified(await self._send("GET", model_path(model), login))
        if op is CrudOp.SESSION_LIST:
            return self._classified(await self._send("GET", session_list_path(), login))
        if op is CrudOp.SESSION_GET and self._sessions:
            self._session_cycle += 1
            client_id = self._sessions[self._session_cycle % len(self._sessions)]
            return self._classified(await self._send("GET", session_path(client_id), login))
        if op is CrudOp.MESSAGE_CREATE and self._sessions:
            self._session_cycle += 1
            parent = self._sessions[self._session_cycle % len(self._sessions)]
            return await self._write(login, WriteKind.MESSAGE, message_payload(), parent)
        if op in _CREATE_A_SESSION_FIRST and self._model_ids:
            self._model_cycle += 1
            model = self._model_ids[self._model_cycle % len(self._model_ids)]
            return await self._write(login, WriteKind.SESSION, session_payload(model), None)
        # MODELS_LIST, and every op that needs a model id or a session not known yet
        reply = await self._send("GET", MODELS_PATH, login)
        self._models_seen += 1
        if reply.status == 200 and (
            not self._model_ids or self._models_seen % _MODELS_REFRESH == 0
        ):
            answer = json.loads(reply.body)
            results = answer.get("results", []) if isinstance(answer, dict) else []
            self._model_ids = [m["id"] for m in results if isinstance(m, dict) and "id" in m]
        return self._classified(reply)

    async def _write(
        self, login: _Login, kind: WriteKind, fields: dict[str, object], parent: str | None
    ) -> Result:
        attempt = self._ledger.attempt(kind, fields, sent=_wall(), parent=parent)
        path = messages_path(parent) if parent is not None else SESSIONS_PATH
        try:
            reply = await self._send("POST", path, login, fields)
        except BaseException as exc:  # timeout, connection error, cancellation: no answer
            self._ledger.fail(attempt.client_id, at=_wall(), reason=type(exc).__name__)
            raise
        if reply.status in (200, 201):
            checksum: str | None = None
            try:
                answer = json.loads(reply.body)
                checksum = answer.get("checksum") if isinstance(answer, dict) else None
            except ValueError:
                pass
            self._ledger.acknowledge(
                attempt.client_id, at=_wall(), status=reply.status, server_checksum=checksum
            )
            if kind is WriteKind.SESSION:
                self._sessions.append(attempt.client_id)
        else:
            self._ledger.fail(
                attempt.client_id, at=_wall(), reason=f"http {reply.status}", status=reply.status
            )
        return self._classified(reply, attempt.client_id)

    @staticmethod
    def _classified(reply: Response, write_id: str | None = None) -> Result:
        outcome = classify_status(reply.status, authenticated=True)
        return _result(outcome, reply.status, reply.headers, write_id)

    async def auth(self) -> Result:
        login = _Login(self._users[0].credentials)
        failed = await self._ensure(login, relogin=False)  # this login is the request itself
        if failed is not None:
            return failed
        return self._classified(await self._send("GET", ME_PATH, login))

    async def admin(self) -> Result:
        if self._staff is None:
            raise LookupError("the admin category needs staff credentials")
        failed = await self._ensure(self._staff)
        if failed is not None:
            return failed
        reply = await self._send("GET", ADMIN_PATH, self._staff)
        if reply.status in (301, 302) and ADMIN_LOGIN_PATH in reply.headers.get("location", ""):
            self._staff.valid = False
            return _result(Outcome.AUTH_FAILURE, reply.status, reply.headers)
        return self._classified(reply)

    async def streaming(self) -> Result:
        login = self._user()
        failed = await self._ensure(login)
        if failed is not None:
            return failed
        path = stream_path(self._settings.stream_events, self._settings.stream_interval_ms)
        reply = await self._send("GET", path, login, stop_at=SSE_END)
        if reply.status != 200:
            return self._classified(reply)
        ended = any(line.rstrip(b"\r") == SSE_END for line in reply.body.split(b"\n"))
        return _result(Outcome.OK if ended else Outcome.SERVER_ERROR, reply.status, reply.headers)

    async def websocket(self) -> Result:
        login = self._user()
        failed = await self._ensure(login)
        if failed is not None:
            return failed
        self._ws_counter += 1
        url = self._ws_base + ws_path(f"drill-{self._ws_counter % WS_ROOMS}")
        settings = self._settings
        try:
            connection = await ws_connect(
                url,
                additional_headers=login.headers,
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
            outcome = classify_status(status, authenticated=True)
            return _result(outcome, status, exc.response.headers)
        except InvalidHandshake:
            return Result(Outcome.CONNECT_ERROR)
        headers: Mapping[str, str] = connection.response.headers if connection.response else {}
        served_by = headers.get("x-served-by")
        release = headers.get("x-release")
        try:
            for n in range(settings.ws_echoes):
                text = f"drill echo {self._ws_counter} {n}"
                await connection.send(text)
                answer: Data = await connection.recv()
                echo = json.loads(answer)
                if not isinstance(echo, dict) or echo.get("echo") != text:
                    return _result(Outcome.SERVER_ERROR, 101, headers)
                served_by = echo.get("served_by", served_by)
            await connection.close()
        except ConnectionClosed:
            return Result(Outcome.WS_DISCONNECT, 101, served_by, release)
        finally:
            if connection.state is not State.CLOSED:
                connection.transport.abort()  # never leave a socket behind (timeout, cancel)
        return Result(Outcome.OK, 101, served_by, release)
