"""The drill's traffic mix for Locust (its web UI, or distributed workers), run as a process::

    DRILL_USER=drill DRILL_PASSWORD=... DRILL_ADMIN=admin DRILL_ADMIN_PASSWORD=... \\
    DRILL_DISABLED=websocket \\
    locust -f locustfile.py --host http://127.0.0.1:8080

Categories, weights, CRUD sub-mix, paths and payloads come from ``rollback_drill.traffic``
(the same definitions as the asyncio generator). ``DRILL_DISABLED`` (comma-separated
categories) leaves some out, e.g. ``websocket`` before the hybrid release. The host must be a
loopback address. Unlike ``rollback_drill.load``, Locust is closed-model (each user waits for
its answer), so it measures latency with coordinated omission and keeps no write ledger: use it
for load, use the generator for the drill's verdicts.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from typing import Any

from locust import FastHttpUser, between, events
from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import connect as ws_connect

from rollback_drill.errors import TargetError
from rollback_drill.load import require_loopback
from rollback_drill.traffic import (
    ADMIN_PATH,
    CRUD_WEIGHTS,
    DEFAULT_WEIGHTS,
    LOGIN_PATH,
    ME_PATH,
    MODELS_PATH,
    SESSIONS_PATH,
    SSE_END,
    WS_ECHOES,
    WS_ROOMS,
    Category,
    CrudOp,
    Mix,
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

log = logging.getLogger("drill.locust")

USER = (os.environ.get("DRILL_USER", "drill"), os.environ.get("DRILL_PASSWORD", "drill"))
STAFF = (os.environ.get("DRILL_ADMIN", "admin"), os.environ.get("DRILL_ADMIN_PASSWORD", "admin"))
MIX = Mix(
    DEFAULT_WEIGHTS,
    disabled=[Category(c.strip()) for c in os.environ.get("DRILL_DISABLED", "").split(",") if c],
)


def _loopback_only(environment: Environment, **_: Any) -> None:
    try:
        require_loopback(environment.host or "")
    except TargetError as exc:
        log.error("%s", exc)
        if environment.runner is not None:
            environment.runner.quit()


events.test_start.add_listener(_loopback_only)  # type: ignore[no-untyped-call]


def _login(client: FastHttpSession, credentials: tuple[str, str], name: str) -> bool:
    body = {"username": credentials[0], "password": credentials[1]}
    with client.post(LOGIN_PATH, json=body, name=name, catch_response=True) as resp:
        if resp.status_code != 200:
            resp.failure(f"login {resp.status_code}")
            return False
        return True


def _csrf(client: FastHttpSession) -> dict[str, str]:
    token = next((c.value for c in client.cookiejar if c.name == "csrftoken"), None)
    return {"X-CSRFToken": token} if token else {}


class DrillUser(FastHttpUser):
    """One virtual user: a normal session, a staff session for admin, the category mix."""

    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        require_loopback(self.host or "")
        self._crud: SmoothRoundRobin[CrudOp] = SmoothRoundRobin(CRUD_WEIGHTS)
        self._models: list[Any] = []
        self._sessions: list[str] = []
        self._staff = FastHttpSession(self.host, self.environment.events.request, user=self)
        _login(self.client, USER, "login (setup)")
        if MIX.is_enabled(Category.ADMIN):
            _login(self._staff, STAFF, "login staff (setup)")

    # -- categories --------------------------------------------------------------------------

    def crud(self) -> None:
        op = self._crud.next()
        if op is CrudOp.MODEL_DETAIL and self._models:
            model = self._models[len(self._sessions) % len(self._models)]
            self.client.get(model_path(model), name="/api/models/[id]/")
        elif op is CrudOp.SESSION_LIST:
            self.client.get(session_list_path(), name="/api/sessions/?limit")
        elif op is CrudOp.SESSION_GET and self._sessions:
            self.client.get(session_path(self._sessions[-1]), name="/api/sessions/[id]/")
        elif op is CrudOp.MESSAGE_CREATE and self._sessions:
            path = messages_path(self._sessions[-1])
            headers = _csrf(self.client)
            body = message_payload()
            self.client.post(path, json=body, headers=headers, name="/api/sessions/[id]/messages/")
        elif op is not CrudOp.MODELS_LIST and self._models:
            body = session_payload(self._models[0])
            resp = self.client.post(SESSIONS_PATH, json=body, headers=_csrf(self.client))
            if resp.status_code in (200, 201):
                self._sessions = [*self._sessions[-99:], str(body["client_id"])]
        else:
            resp = self.client.get(MODELS_PATH)
            if resp.status_code == 200 and resp.content:
                results = json.loads(resp.content).get("results", [])
                self._models = [m["id"] for m in results if "id" in m]

    def auth(self) -> None:
        if _login(self.client, USER, LOGIN_PATH):
            self.client.get(ME_PATH)

    def admin(self) -> None:
        with self._staff.get(ADMIN_PATH, allow_redirects=False, catch_response=True) as resp:
            if resp.status_code in (301, 302):
                resp.failure("redirected to the admin login: staff session lost")
                _login(self._staff, STAFF, "login staff (again)")

    def streaming(self) -> None:
        path = stream_path()
        with self.client.get(path, name=path.split("?")[0], catch_response=True) as resp:
            if resp.status_code == 200 and SSE_END not in (resp.content or b""):
                resp.failure("stream ended before 'event: end'")

    def websocket(self) -> None:
        cookie = "; ".join(f"{c.name}={c.value}" for c in self.client.cookiejar)
        url = "ws" + (self.host or "")[4:] + ws_path(f"drill-{id(self) % WS_ROOMS}")
        started = time.perf_counter()
        error: Exception | None = None
        try:
            with ws_connect(url, additional_headers={"Cookie": cookie}, proxy=None) as ws:
                for n in range(WS_ECHOES):
                    ws.send(f"echo {n}")
                    ws.recv(timeout=10)
        except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError) as exc:
            error = exc
        self.environment.events.request.fire(
            request_type="WS",
            name="/ws/chat/[room]/",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=error,
            context={},
        )


_HANDLERS: dict[Category, Callable[[DrillUser], None]] = {
    Category.CRUD: DrillUser.crud,
    Category.AUTH: DrillUser.auth,
    Category.ADMIN: DrillUser.admin,
    Category.STREAMING: DrillUser.streaming,
    Category.WEBSOCKET: DrillUser.websocket,
}
_WEIGHTS = {c: w for c, w in MIX.weights.items() if MIX.is_enabled(c)}
_GCD = math.gcd(*_WEIGHTS.values())
# what Locust's metaclass makes of a {task: weight} dict: each task repeated by its weight
DrillUser.tasks = [_HANDLERS[c] for c, w in _WEIGHTS.items() for _ in range(w // _GCD)]
