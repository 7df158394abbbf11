"""A target's traffic profile: what one request of each of the plan's categories is on *its*
stack, and how a write is acknowledged and read back -- data in the target file, not code.

The engine knows the categories (crud, auth, admin, streaming, websocket) and nothing of any
app's URLs, payloads, login flow or headers; a profile supplies them:

- ``login``: a JSON body or an HTML form (with its CSRF field read from the login page), the
  statuses that mean success and the session cookie that must come with it; unsafe requests
  then carry the CSRF cookie's value in a header;
- ``categories``: each with its weight; ``crud`` a weighted list of requests whose paths and
  JSON bodies are templates; ``auth`` a fresh login then a check request; ``admin`` a page the
  staff user reads (a redirect to its login page is an auth failure); ``streaming`` a path and
  the line that ends a complete stream; ``websocket`` a path, a message and the reply expected.
  A category left out is not sent, and its triggers are "not observable on this target";
- ``ledger``: which answers acknowledge a write and how to read every write back with SQL.

Templates: ``{id}`` a fresh uuid per request (the write's id; ``{id:8}`` its first 8
characters), ``{n}`` a per-category counter, ``{room}`` the counter modulo ``rooms``,
``{base_url}``, and ``{pool}`` a value of a named pool: the ids of earlier acknowledged writes
(``write: session`` fills pool ``session``) or values captured from answers
(``capture: {model: results.id}`` fills pool ``model`` from ``answer["results"][*]["id"]``).
A request whose pool is still empty is replaced by the request that fills it. A body string
that is exactly one placeholder keeps the value's JSON type (a captured integer id stays one).

Hand-written: no kept library describes HTTP traffic as data this small (Locust and k6 take
code; OpenAPI describes an API, not a mix, a login flow and a write ledger).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)(?::(\d+))?\}")
BUILTIN = frozenset({"id", "n", "room", "base_url", "i"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Csrf(_Strict):
    cookie: str = "csrftoken"
    header: str = "X-CSRFToken"
    field: str | None = None  # the login form's hidden field (form logins)


class LoginFlow(_Strict):
    path: str
    form: bool = False  # an HTML form (GET the page for its CSRF field, POST urlencoded)
    username_field: str = "username"
    password_field: str = "password"
    ok: list[int] = [200]
    session_cookie: str | None = None  # must be set by a successful login
    csrf: Csrf | None = None


class Request(_Strict):
    name: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    path: str
    weight: int = Field(default=1, ge=0)
    body: dict[str, Any] | None = None
    status: list[int] = [200]
    write: str | None = None  # this request writes; its id fills the pool of this name
    capture: dict[str, str] = {}  # pool -> dotted path into the JSON answer ("results.id")

    def pools(self) -> set[str]:
        """The pools this request's templates read."""
        texts = [self.path, *_strings(self.body)]
        return {m.group(1) for t in texts for m in _PLACEHOLDER.finditer(t)} - BUILTIN


class Crud(_Strict):
    weight: int = Field(ge=0)
    requests: list[Request] = Field(min_length=1)


class Auth(_Strict):
    weight: int = Field(ge=0)
    check: Request | None = None  # read with the fresh session (e.g. "who am I")


class Admin(_Strict):
    weight: int = Field(ge=0)
    path: str
    login_page: str | None = None  # a redirect there means the staff session was refused
    status: list[int] = [200]


class Streaming(_Strict):
    weight: int = Field(ge=0)
    path: str
    end: str  # the line that completes a stream (SSE: "event: end")
    duration_s: float = Field(default=0.0, ge=0)  # how long a complete stream takes by design


class WebSocket(_Strict):
    weight: int = Field(ge=0)
    path: str
    rooms: int = Field(default=8, ge=1)
    send: str = "{i}"
    expect: str | None = None  # the reply's text; None: a JSON echo (see ``echo_field``)
    echo_field: str = "echo"  # the reply is JSON whose field holds the message sent
    echoes: int = Field(default=3, ge=1)
    headers: dict[str, str] = {}


class Categories(_Strict):
    crud: Crud | None = None
    auth: Auth | None = None
    admin: Admin | None = None
    streaming: Streaming | None = None
    websocket: WebSocket | None = None

    def weights(self) -> dict[str, int]:
        return {name: c.weight for name in _CATEGORIES if (c := getattr(self, name)) is not None}


_CATEGORIES = ("crud", "auth", "admin", "streaming", "websocket")


class Headers(_Strict):
    """Optional answer headers the app sets (the reference app's; most apps have none)."""

    served_by: str | None = None
    release: str | None = None
    delay_ms: str | None = None  # the delay a faulty release added on purpose
    failure_cause: str | None = None


class ReadBack(_Strict):
    """Read every row a write of ``write`` produced: ``sql`` selects ``columns``, the first is
    the write's id; the others are the body's field names, or ``_checksum`` (a checksum the
    app stored) or ``_parent`` (the id of the write this one belongs to)."""

    write: str
    sql: str
    columns: list[str] = Field(min_length=2)


class Ack(_Strict):
    status: list[int] = [200, 201]
    id_field: str  # the body field that carries the write's id
    echo_field: str | None = None  # the answer's JSON field that must equal the id sent
    checksum_field: str | None = None  # the answer's JSON field with the app's checksum


class LedgerSpec(_Strict):
    ack: Ack
    read_back: list[ReadBack] = []


class TrafficProfile(_Strict):
    login: LoginFlow
    categories: Categories
    headers: Headers = Headers()
    ledger: LedgerSpec | None = None

    @model_validator(mode="after")
    def _pools_have_producers(self) -> TrafficProfile:
        crud = self.categories.crud
        if crud is None:
            return self
        producers = self.producers()
        for req in crud.requests:
            for pool in req.pools():
                if pool not in producers:
                    raise ValueError(
                        f"request {req.name!r} reads pool {{{pool}}}, which no request fills "
                        "(write: or capture:)"
                    )
        if self.ledger is not None:
            for write in {r.write for r in crud.requests if r.write}:
                req = next(r for r in crud.requests if r.write == write)
                if self.ledger.ack.id_field not in (req.body or {}):
                    raise ValueError(
                        f"request {req.name!r} writes but its body has no "
                        f"{self.ledger.ack.id_field!r} (ledger.ack.id_field)"
                    )
        return self

    def producers(self) -> dict[str, Request]:
        """Pool name -> the request that fills it."""
        out: dict[str, Request] = {}
        for req in self.categories.crud.requests if self.categories.crud else []:
            if req.write:
                out.setdefault(req.write, req)
            for pool in req.capture:
                out.setdefault(pool, req)
        return out

    def observable(self) -> frozenset[str]:
        """The categories this target's traffic exercises."""
        return frozenset(name for name, w in self.categories.weights().items() if w > 0)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def fill(template: str, values: Mapping[str, Any]) -> str:
    """``template`` with every ``{name}`` / ``{name:k}`` (first k characters) replaced."""

    def one(m: re.Match[str]) -> str:
        text = str(values[m.group(1)])
        return text[: int(m.group(2))] if m.group(2) else text

    return _PLACEHOLDER.sub(one, template)


def fill_body(body: Any, values: Mapping[str, Any]) -> Any:
    """A JSON body template filled; a string that is one placeholder keeps the value's type."""
    if isinstance(body, str):
        whole = _PLACEHOLDER.fullmatch(body)
        if whole and not whole.group(2):
            return values[whole.group(1)]
        return fill(body, values)
    if isinstance(body, Mapping):
        return {k: fill_body(v, values) for k, v in body.items()}
    if isinstance(body, list):
        return [fill_body(v, values) for v in body]
    return body


def captured(answer: Any, path: str) -> list[Any]:
    """Values at a dotted path of a JSON answer; lists are walked (``results.id``)."""
    found = [answer]
    for key in path.split("."):
        nxt: list[Any] = []
        for node in found:
            items = node if isinstance(node, list) else [node]
            nxt += [i[key] for i in items if isinstance(i, Mapping) and key in i]
        found = nxt
    return [v for node in found for v in (node if isinstance(node, list) else [node])]


def new_id() -> str:
    return str(uuid.uuid4())


def template_values(base_url: str, n: int, rooms: int = 1, **extra: Any) -> dict[str, Any]:
    """The built-in template values of one request."""
    return {"id": new_id(), "n": n, "room": n % rooms, "base_url": base_url, "i": 0, **extra}
