"""The traffic mix: endpoint categories, their weights, and what one request of each is.

This module is client-agnostic: the asyncio generator (``load.py``) and the Locust file
(``locustfile.py``) both take their categories, weights, paths and payloads from here, so the
two always send the same mix.

- :class:`Category` -- the plan's endpoint categories (``docs/app-api.md``);
- :data:`DEFAULT_WEIGHTS` / :data:`CRUD_WEIGHTS` -- the default mix and the CRUD sub-mix;
- :class:`Mix` -- weights plus run-time enable/disable, choosing the next category by smooth
  weighted round-robin (deterministic: over any ``sum(weights)`` consecutive picks each enabled
  category gets exactly its share);
- :class:`Credentials` of the normal and the staff user;
- paths and payload builders (each write gets a fresh uuid ``client_id``).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Generic, TypeVar


class Category(StrEnum):
    """Endpoint categories of the rollback plan."""

    CRUD = "crud"
    AUTH = "auth"
    ADMIN = "admin"
    STREAMING = "streaming"
    WEBSOCKET = "websocket"


@dataclass(frozen=True, slots=True)
class Credentials:
    """A user of the app (``DRILL_USER`` / ``DRILL_ADMIN`` of the reference stack)."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials({self.username!r}, password=***)"


class CrudOp(StrEnum):
    """The requests the ``crud`` category is made of (reads and writes)."""

    MODELS_LIST = "models_list"
    MODEL_DETAIL = "model_detail"
    SESSION_LIST = "session_list"
    SESSION_GET = "session_get"
    SESSION_CREATE = "session_create"
    MESSAGE_CREATE = "message_create"


DEFAULT_WEIGHTS: Final[Mapping[Category, int]] = {
    Category.CRUD: 60,
    Category.AUTH: 5,  # a login hashes a password (PBKDF2): by far the costliest request
    Category.ADMIN: 5,
    # 20 %: at the default 40 req/s and time scale 10 a (6 s) P95 window holds >= 40 streams,
    # the P95 rules' minimum sample count (15 % left streaming just short of it)
    Category.STREAMING: 20,
    Category.WEBSOCKET: 10,
}
"""Default share of each category in the total rate (normalised over enabled categories)."""

CRUD_WEIGHTS: Final[Mapping[CrudOp, int]] = {
    CrudOp.MODELS_LIST: 3,
    CrudOp.MODEL_DETAIL: 2,
    CrudOp.SESSION_LIST: 1,
    CrudOp.SESSION_GET: 2,
    CrudOp.SESSION_CREATE: 2,
    CrudOp.MESSAGE_CREATE: 2,
}
"""Reads 8 : writes 4 within ``crud``."""

# Paths of docs/app-api.md.
LOGIN_PATH: Final = "/api/auth/login/"
ME_PATH: Final = "/api/auth/me/"
MODELS_PATH: Final = "/api/models/"
SESSIONS_PATH: Final = "/api/sessions/"
STREAM_PATH: Final = "/api/stream/"
ADMIN_PATH: Final = "/admin/"
ADMIN_LOGIN_PATH: Final = "/admin/login/"
HEALTH_PATH: Final = "/api/health/"

SESSION_LIST_LIMIT: Final = 10
STREAM_EVENTS: Final = 5
STREAM_INTERVAL_MS: Final = 50
WS_ECHOES: Final = 3
WS_ROOMS: Final = 8
SSE_END: Final = b"event: end"
"""The line that completes a stream."""


def model_path(model_id: object) -> str:
    return f"{MODELS_PATH}{model_id}/"


def session_path(client_id: str) -> str:
    return f"{SESSIONS_PATH}{client_id}/"


def messages_path(session_client_id: str) -> str:
    return f"{SESSIONS_PATH}{session_client_id}/messages/"


def session_list_path(limit: int = SESSION_LIST_LIMIT) -> str:
    return f"{SESSIONS_PATH}?limit={limit}"


def stream_path(n: int = STREAM_EVENTS, interval_ms: int = STREAM_INTERVAL_MS) -> str:
    return f"{STREAM_PATH}?n={n}&interval_ms={interval_ms}"


def ws_path(room: str) -> str:
    return f"/ws/chat/{room}/"


def new_client_id() -> str:
    return str(uuid.uuid4())


def session_payload(model_id: object, client_id: str | None = None) -> dict[str, object]:
    """Body of ``POST /api/sessions/``: the written fields of a session."""
    cid = client_id or new_client_id()
    return {"client_id": cid, "title": f"drill {cid[:8]}", "model": model_id}


def message_payload(client_id: str | None = None) -> dict[str, object]:
    """Body of ``POST /api/sessions/<id>/messages/``: the written fields of a message."""
    cid = client_id or new_client_id()
    return {"client_id": cid, "role": "user", "content": f"drill message {cid}"}


K = TypeVar("K")


class SmoothRoundRobin(Generic[K]):
    """nginx's smooth weighted round-robin: exact shares, evenly interleaved, no randomness."""

    def __init__(self, weights: Mapping[K, int]) -> None:
        self._weights = {k: w for k, w in weights.items() if w > 0}
        self._current = dict.fromkeys(self._weights, 0)
        self._total = sum(self._weights.values())

    def __bool__(self) -> bool:
        return self._total > 0

    def next(self) -> K:
        if not self._total:
            raise LookupError("no item with a positive weight")
        best: K | None = None
        best_value = 0
        current = self._current
        for key, weight in self._weights.items():
            value = current[key] + weight
            current[key] = value
            if best is None or value > best_value:
                best, best_value = key, value
        assert best is not None
        current[best] -= self._total
        return best


class Mix:
    """Weights over categories; categories can be enabled or disabled while traffic runs.

    The generator's total rate stays the configured one: weights are normalised over the
    enabled categories (disabling ``websocket`` gives its share to the others).
    """

    def __init__(
        self,
        weights: Mapping[Category, int] | None = None,
        *,
        disabled: Iterable[Category] = (),
    ) -> None:
        raw = dict(DEFAULT_WEIGHTS if weights is None else weights)
        for category, weight in raw.items():
            if not isinstance(weight, int) or weight < 0:
                raise ValueError(f"weight of {category!s} must be an int >= 0, got {weight!r}")
        self._weights: dict[Category, int] = {Category(c): w for c, w in raw.items() if w > 0}
        if not self._weights:
            raise ValueError("the mix needs at least one category with a positive weight")
        self._enabled = set(self._weights)
        self._lock = threading.Lock()
        self._rr: SmoothRoundRobin[Category] = SmoothRoundRobin({})
        for category in disabled:
            self._enabled.discard(Category(category))
        self._rebuild()

    @property
    def weights(self) -> Mapping[Category, int]:
        return dict(self._weights)

    def enabled(self) -> frozenset[Category]:
        return frozenset(self._enabled)

    def is_enabled(self, category: Category) -> bool:
        return category in self._enabled

    def enable(self, category: Category) -> None:
        category = Category(category)
        if category not in self._weights:
            raise ValueError(f"{category!s} has no weight in this mix")
        with self._lock:
            self._enabled.add(category)
            self._rebuild()

    def disable(self, category: Category) -> None:
        with self._lock:
            self._enabled.discard(Category(category))
            self._rebuild()

    def share(self, category: Category) -> float:
        """Fraction of the total rate that ``category`` gets now (0 when disabled)."""
        total = sum(self._weights[c] for c in self._enabled)
        if category not in self._enabled or not total:
            return 0.0
        return self._weights[category] / total

    def next(self) -> Category | None:
        """The category of the next request, or None when every category is disabled."""
        with self._lock:
            return self._rr.next() if self._rr else None

    def _rebuild(self) -> None:
        enabled = {c: w for c, w in self._weights.items() if c in self._enabled}
        self._rr = SmoothRoundRobin(enabled)
