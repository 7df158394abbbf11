"""The drill's traffic from Locust (its web UI, or one master and many workers): the same
requests, judged the same way, as the asyncio generator (``rollback_drill.load``)::

    set -a; . WORKSPACE/.rollback/credentials; set +a     # what `rollback-drill up` printed
    DRILL_TARGET=examples/notes/target.yaml DRILL_LEDGER=reports/locust-ledger.jsonl \\
    locust -f locustfile.py --host "$RBD_BASE_URL" -u 40 -r 40 --headless -t 60s --csv out

What is sent comes from the target's traffic profile (``DRILL_TARGET``, default
``targets/reference.yaml``) through :class:`rollback_drill.exchange.Exchanges`, the class the
generator's ``Actions`` use: the categories at the profile's weights, picked by the same smooth
weighted round-robin (exact shares, not Locust's random task weights), the CRUD sub-mix, path
and body templates, pools of captured values and acknowledged writes, the login flow (JSON, or
an HTML form with its CSRF field), the stream's end line and the WebSocket's messages and
expected replies. Each category's request is ONE Locust request: type = the category, name =
the CRUD request's name (or the category), failure = its outcome as the generator classifies
it (``auth_failure (HTTP 401)``, ``ws_disconnect``, ...), so ``--csv`` stats read per category
and outcome. Re-logins are counted under type ``relogin`` (not a category: the generator counts
them apart too).

The generator's behaviour, in Locust's terms:

- open model: every user runs at ``constant_throughput(DRILL_USER_RATE)`` (default 1 request/s),
  so the total rate is users x that, whatever the latency -- up to a user's own concurrency of
  one: a user whose request takes longer than 1/rate falls behind (Locust does not queue; the
  generator measures from the schedule, Locust from the send: latencies are not comparable
  under overload, counts and outcomes are);
- a session answered 401/403 is logged in again before that user's next request;
- the WebSocket's replies are checked (the profile's ``expect`` text, or a JSON echo);
- every write goes through a :class:`~rollback_drill.ledger.Ledger` exactly as the generator's
  do; with ``DRILL_LEDGER=PATH`` each process saves it there when its users stop (a worker to
  ``PATH`` with ``.<worker id>`` before the suffix), the generator's JSON-lines format, which
  ``rollback_drill.checks.data`` reads (``Ledger.load``; several files concatenate into one);
- with ``DRILL_RECORDS=PATH`` (per worker likewise) every category request is also appended,
  as it ends, as a :class:`~rollback_drill.records.RequestRecord` -- the generator's record
  journal format (``records.read_records``), which a ``RecordStore`` and so the monitor read.
  Its ``scheduled`` is its start: Locust has no schedule, so its latencies omit the queueing
  of an overloaded client (coordinated omission) that the generator's include.

Credentials: the target's users, their ``${NAME}`` references read from the environment as
``rollback-drill watch`` does (``DRILL_USER``/``DRILL_PASSWORD``/``DRILL_ADMIN``/
``DRILL_ADMIN_PASSWORD`` for the reference target). ``DRILL_DISABLED=websocket`` (comma-
separated categories) leaves some out, e.g. before the hybrid release; no staff user, no admin
traffic. The host defaults to ``RBD_BASE_URL`` and must be a loopback address.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode

from locust import FastHttpUser, constant_throughput, events, task
from locust.contrib.fasthttp import FastHttpSession, FastResponse
from locust.env import Environment
from locust.event import EventHook
from locust.runners import MasterRunner, WorkerRunner
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import connect as ws_connect

from rollback_drill.errors import TargetError
from rollback_drill.exchange import Exchanges
from rollback_drill.ledger import Ledger
from rollback_drill.load import require_loopback
from rollback_drill.records import Outcome, RequestRecord, classify_handshake
from rollback_drill.target import load_target
from rollback_drill.traffic import Category, Credentials, Mix
from rollback_drill.watch import credentials

log = logging.getLogger("drill.locust")

HERE = Path(__file__).resolve().parent
TARGET = load_target(Path(os.environ.get("DRILL_TARGET") or HERE / "targets" / "reference.yaml"))
PROFILE = TARGET.traffic
USER, STAFF = credentials(TARGET)
USER_RATE = float(os.environ.get("DRILL_USER_RATE") or 1.0)
TIMEOUT_S, CONNECT_TIMEOUT_S = 10.0, 3.0  # the generator's ActionSettings
_disabled = {Category(c.strip()) for c in os.environ.get("DRILL_DISABLED", "").split(",") if c}
if STAFF is None:
    _disabled.add(Category.ADMIN)
MIX = Mix(
    {Category(c): w for c, w in PROFILE.categories.weights().items()},
    disabled=_disabled,
)
LEDGER = Ledger()  # this process's writes
_exchanges: Exchanges | None = None  # one per process, as the generator has one per run
_SILENT = EventHook()  # the HTTP calls report nothing; each category's request reports once
_records: IO[str] | None = None  # DRILL_RECORDS: every category request as a RequestRecord


class _Failed(Exception):
    """A request's outcome other than ``ok``, as Locust's failure (its text groups the stats)."""

    def __init__(self, outcome: Outcome, status: int | None) -> None:
        super().__init__(f"{outcome.value}" + (f" (HTTP {status})" if status else ""))

    def __repr__(self) -> str:  # Locust's failure tables show repr(): the outcome first
        return str(self)


def _exchanges_for(host: str) -> Exchanges:
    global _exchanges
    if _exchanges is None:
        _exchanges = Exchanges(PROFILE, require_loopback(host))
    return _exchanges


@events.test_start.add_listener
def _loopback_only(environment: Environment, **_: Any) -> None:
    try:
        require_loopback(environment.host or DrillUser.host or "")
    except TargetError as exc:
        log.error("%s", exc)
        if environment.runner is not None:
            environment.runner.quit()


def _own_file(variable: str, environment: Environment) -> Path | None:
    """This process's file named by the environment ``variable``: a worker's gets
    ``.<worker id>`` before the suffix; the master (which sends nothing) has none."""
    path = os.environ.get(variable)
    if not path or isinstance(environment.runner, MasterRunner):
        return None
    out = Path(path)
    if isinstance(environment.runner, WorkerRunner):
        out = out.with_name(f"{out.stem}.{environment.runner.client_id}{out.suffix}")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


@events.init.add_listener
def _open_records(environment: Environment, **_: Any) -> None:
    global _records
    out = _own_file("DRILL_RECORDS", environment)
    if out is not None:
        _records = open(out, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 (line-buffered)


# Saved at test_stop (the users have stopped: after --stop-timeout let the last requests finish)
# and at quitting (which a Ctrl-C fires before the runner stops its users); each save writes
# the whole ledger, and the last one comes after the users stopped. The records file is
# line-buffered and left open: a request that ends late still lands.
@events.test_stop.add_listener
@events.quitting.add_listener
def _save_ledger(environment: Environment, **_: Any) -> None:
    out = _own_file("DRILL_LEDGER", environment)
    if out is None:
        return
    LEDGER.save(out)
    log.info(
        "ledger: %d writes (%d acknowledged) saved to %s", len(LEDGER), len(LEDGER.acked()), out
    )


class _Login:
    """One session: its own cookie jar (the session and CSRF cookies) and whether it is valid."""

    def __init__(self, credentials: Credentials, session: FastHttpSession) -> None:
        self.credentials = credentials
        self.session = session
        self.valid = False

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.session.cookiejar if c.name == name), None)

    def cookie_header(self) -> dict[str, str]:
        jar = "; ".join(f"{c.name}={c.value}" for c in self.session.cookiejar)
        return {"Cookie": jar} if jar else {}


Answer = tuple[str, Outcome, int | None]  # (the request's name, its outcome, its status)


def _transport(resp: FastResponse) -> Outcome | None:
    """No HTTP answer at all: a timeout or a connection error (else None)."""
    if resp.status_code:
        return None
    return Outcome.TIMEOUT if isinstance(resp.error, TimeoutError) else Outcome.CONNECT_ERROR


class DrillUser(FastHttpUser):
    """A virtual user of the target: its own session (and the staff's), the profile's mix."""

    host = os.environ.get("RBD_BASE_URL")
    wait_time = constant_throughput(USER_RATE)
    network_timeout = TIMEOUT_S
    connection_timeout = CONNECT_TIMEOUT_S

    def on_start(self) -> None:
        self.x = _exchanges_for(self.host or "")
        self.client = self._session()
        self.user = _Login(USER, self.client)
        self.fresh = _Login(USER, self._session())  # the auth category's new logins
        self.staff = _Login(STAFF, self._session()) if STAFF else None
        self._ensure(self.user, relogin=False)
        if self.staff is not None and MIX.is_enabled(Category.ADMIN):
            self._ensure(self.staff, relogin=False)
        for request in self.x.capturing():  # as the generator's set-up: fill captured pools
            if self.user.valid and not all(self.x.pools[p] for p in request.capture):
                self._crud(request.name)

    def _session(self) -> FastHttpSession:
        return FastHttpSession(
            self.host,
            _SILENT,
            user=None,
            network_timeout=TIMEOUT_S,
            connection_timeout=CONNECT_TIMEOUT_S,
            max_retries=0,
        )

    @task
    def step(self) -> None:
        category = MIX.next()
        if category is None:
            return
        started, perf = time.time(), time.perf_counter()
        try:
            name, outcome, status = _HANDLERS[category](self)
        except TimeoutError:
            name, outcome, status = category.value, Outcome.TIMEOUT, None
        except (ConnectionError, OSError):
            name, outcome, status = category.value, Outcome.CONNECT_ERROR, None
        except ValueError:  # a malformed answer (JSON) from the app
            name, outcome, status = category.value, Outcome.SERVER_ERROR, None
        elapsed = time.perf_counter() - perf
        if _records is not None:  # scheduled = started: Locust keeps no schedule
            ended = started + elapsed
            record = RequestRecord(
                category.value, started, started, ended, elapsed, outcome, status
            )
            _records.write(record.to_json() + "\n")
        self.environment.events.request.fire(
            request_type=category.value,
            name=name,
            start_time=started,
            response_time=elapsed * 1000,
            response_length=0,
            response=None,
            context={"outcome": outcome.value, "status": status},
            exception=None if outcome is Outcome.OK else _Failed(outcome, status),
        )

    # -- plumbing (what Actions._send and Actions._ensure do, on Locust's client) ------------

    def _send(
        self,
        login: _Login,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> FastResponse:
        headers = {"Accept-Encoding": "identity"}
        if body is not None:
            headers["Content-Type"] = content_type
            csrf = PROFILE.login.csrf
            token = login.cookie(csrf.cookie) if csrf is not None else None
            if csrf is not None and token:
                headers[csrf.header] = token
        resp: FastResponse = login.session.request(
            method, path, data=body, headers=headers, allow_redirects=False
        )
        if resp.status_code in (401, 403):
            login.valid = False
        return resp

    def _ensure(self, login: _Login, *, relogin: bool = True) -> Answer | None:
        """Log ``login`` in when its session is not valid; the failure, if it failed."""
        if login.valid:
            return None
        flow = PROFILE.login
        login.session.cookiejar.clear()
        started, perf = time.time(), time.perf_counter()
        if flow.form:
            page = self._send(login, "GET", flow.path)
            if (failed := _transport(page)) is not None:
                return "login", failed, None
            if page.status_code != 200:
                return "login", self.x.classify(page.status_code, [200]), page.status_code
            try:
                fields = self.x.login_fields(login.credentials, page.content)
            except LookupError:
                return "login", Outcome.SERVER_ERROR, page.status_code
            body = urlencode(fields).encode()
            reply = self._send(login, "POST", flow.path, body, "application/x-www-form-urlencoded")
        else:
            body = self.x.login_fields(login.credentials)
            reply = self._send(login, "POST", flow.path, json.dumps(body).encode())
        if (failed := _transport(reply)) is not None:
            return "login", failed, None
        outcome = self.x.login_outcome(reply.status_code, {c.name for c in login.session.cookiejar})
        if relogin:
            self.environment.events.request.fire(
                request_type="relogin",
                name=login.credentials.username,
                start_time=started,
                response_time=(time.perf_counter() - perf) * 1000,
                response_length=0,
                response=None,
                context={},
                exception=None if outcome is None else _Failed(outcome, reply.status_code),
            )
        if outcome is not None:
            login.session.cookiejar.clear()
            return "login", outcome, reply.status_code
        login.valid = True
        return None

    # -- categories (as Actions does them) ---------------------------------------------------

    def crud(self) -> Answer:
        return self._crud(None)

    def _crud(self, name: str | None) -> Answer:
        request = self.x.next_crud(name)
        if (failed := self._ensure(self.user)) is not None:
            return failed
        rendered = self.x.render(request)
        if request.write is None:
            resp = self._send(self.user, rendered.method, rendered.path, rendered.json_body())
            if (failed_ := _transport(resp)) is not None:
                return request.name, failed_, None
            self.x.observe(request, resp.status_code, resp.content or b"")
            return request.name, self.x.classify(resp.status_code, request.status), resp.status_code
        attempt = self.x.attempt(LEDGER, rendered)
        try:
            resp = self._send(self.user, rendered.method, rendered.path, rendered.json_body())
        except BaseException as exc:  # killed at the end of the run: no answer
            self.x.unanswered(LEDGER, attempt, exc)
            raise
        if (failed_ := _transport(resp)) is not None:
            self.x.unanswered(LEDGER, attempt, resp.error or ConnectionError())
            return request.name, failed_, None
        self.x.settle(LEDGER, rendered, attempt, resp.status_code, resp.content or b"")
        return request.name, self.x.classify(resp.status_code, request.status), resp.status_code

    def auth(self) -> Answer:
        spec = PROFILE.categories.auth
        self.fresh.valid = False  # this login is the request itself
        if (failed := self._ensure(self.fresh, relogin=False)) is not None:
            return "auth", *failed[1:]
        if spec is None or spec.check is None:
            return "auth", Outcome.OK, 200
        check = self.x.render(spec.check)
        resp = self._send(self.fresh, check.method, check.path)
        if (failed_ := _transport(resp)) is not None:
            return "auth", failed_, None
        return "auth", self.x.classify(resp.status_code, spec.check.status), resp.status_code

    def admin(self) -> Answer:
        spec = PROFILE.categories.admin
        if self.staff is None or spec is None:
            raise LookupError("the admin category needs staff credentials and an admin page")
        if (failed := self._ensure(self.staff)) is not None:
            return "admin", *failed[1:]
        resp = self._send(self.staff, "GET", spec.path)
        if (failed_ := _transport(resp)) is not None:
            return "admin", failed_, None
        location = (resp.headers or {}).get("location", "")
        if self.x.admin_refused(resp.status_code, location):
            self.staff.valid = False
            return "admin", Outcome.AUTH_FAILURE, resp.status_code
        return "admin", self.x.classify(resp.status_code, spec.status), resp.status_code

    def streaming(self) -> Answer:
        if (failed := self._ensure(self.user)) is not None:
            return "streaming", *failed[1:]
        resp = self._send(self.user, "GET", self.x.stream_path())
        if (failed_ := _transport(resp)) is not None:
            return "streaming", failed_, None
        if resp.status_code != 200:
            return "streaming", self.x.classify(resp.status_code, [200]), resp.status_code
        ended = self.x.stream_ended(resp.content or b"")
        return "streaming", Outcome.OK if ended else Outcome.SERVER_ERROR, resp.status_code

    def websocket(self) -> Answer:
        if (failed := self._ensure(self.user)) is not None:
            return "websocket", *failed[1:]
        conversation = self.x.websocket()
        url = "ws" + self.x.base[4:] + conversation.path
        headers = {**self.user.cookie_header(), **conversation.headers}
        try:
            ws = ws_connect(
                url,
                additional_headers=headers,
                proxy=None,
                open_timeout=CONNECT_TIMEOUT_S,
                close_timeout=1.0,
                compression=None,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                self.user.valid = False
            return "websocket", classify_handshake(status), status
        except (InvalidHandshake, OSError):
            return "websocket", Outcome.CONNECT_ERROR, None
        with ws:
            try:
                for i in range(conversation.spec.echoes):
                    text = conversation.message(i)
                    ws.send(text)
                    if not self.x.ws_reply_ok(conversation, text, ws.recv(timeout=TIMEOUT_S)):
                        return "websocket", Outcome.SERVER_ERROR, 101
            except ConnectionClosed:
                return "websocket", Outcome.WS_DISCONNECT, 101
        return "websocket", Outcome.OK, 101


_HANDLERS: dict[Category, Callable[[DrillUser], Answer]] = {
    Category.CRUD: DrillUser.crud,
    Category.AUTH: DrillUser.auth,
    Category.ADMIN: DrillUser.admin,
    Category.STREAMING: DrillUser.streaming,
    Category.WEBSOCKET: DrillUser.websocket,
}
