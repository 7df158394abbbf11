"""User complaints: support tickets filed from outside, the way a help desk would.

"User complaints spike" has no technical cause the suite could inject into the stack; the
signal is the ticket count. :class:`TicketSpike` files ``count`` tickets through one of the
inputs the suite accepts from outside (``rollback_drill.signals.tickets``): the HTTP endpoint
(``POST /tickets``, one ticket per request, like a help-desk webhook) or the JSON-lines file
(appended line by line, like an export job). Every ticket carries a unique id, so re-applying
never double counts. Filed tickets cannot be unfiled: the revert has nothing to undo.
The proof is the collector's own count (``GET /tickets``, or the file's lines it took).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

import httpx

from rollback_drill.errors import FaultError
from rollback_drill.faults.base import BaseFault, Effect
from rollback_drill.journal import Journal
from rollback_drill.load import require_loopback

__all__ = ["TicketSpike"]

SUBJECTS = (
    "Chat stops mid-answer",
    "Logged out again and again",
    "Page is very slow today",
    "Streaming reply never finishes",
    "Error 502 when opening a session",
)


class TicketSpike(BaseFault):
    """File ``count`` tickets, ``spacing_s`` apart, over HTTP (``url``) or into ``path``.

    ``counter``: how the effect is read (e.g. ``collector.count``); by default ``GET url``.
    """

    family: ClassVar[Literal["signal"]] = "signal"

    def __init__(
        self,
        *,
        count: int,
        url: str | None = None,
        path: Path | None = None,
        spacing_s: float = 0.0,
        counter: Callable[[], int] | None = None,
        journal: Journal | None = None,
    ) -> None:
        if count < 1:
            raise ValueError(f"count must be >= 1, not {count}")
        if (url is None) == (path is None):
            raise ValueError("give exactly one ticket input: url or path")
        if url is not None:
            require_loopback(url.rsplit("/tickets", 1)[0])
        if counter is None and url is None:
            raise ValueError("a file input needs counter= (the collector's count) as its proof")
        super().__init__(
            "TicketSpike",
            journal,
            {"count": count, "input": url or str(path), "spacing_s": spacing_s},
        )
        self.count, self.url, self.path, self.spacing_s = count, url, path, spacing_s
        self.counter = counter or self._http_count
        self.batch = uuid.uuid4().hex[:8]
        self.filed: list[str] = []
        self.before = 0

    def tickets(self) -> list[dict[str, Any]]:
        return [
            {
                "id": f"rbd-{self.batch}-{n}",
                "subject": SUBJECTS[n % len(SUBJECTS)],
                "time": None,  # set when filed
            }
            for n in range(self.count)
        ]

    def _apply(self) -> float | None:
        self.before = self.counter()
        first: float | None = None
        for n, ticket in enumerate(self.tickets()):
            if n and self.spacing_s:
                time.sleep(self.spacing_s)
            ticket["time"] = time.time()
            first = first or ticket["time"]
            if self.url is not None:
                r = httpx.post(self.url, json=ticket, timeout=10.0)
                if r.status_code != 201:
                    raise FaultError(f"ticket endpoint answered {r.status_code}: {r.text[:120]}")
            else:
                assert self.path is not None
                with self.path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(ticket) + "\n")
            self.filed.append(ticket["id"])
        return first

    def _revert(self) -> None:
        pass  # a filed ticket stays filed

    def _http_count(self) -> int:
        assert self.url is not None
        return int(httpx.get(self.url, timeout=10.0).json()["count"])

    def observe(self) -> Effect:
        got = self.counter() - self.before
        return Effect(got >= self.count, got, f"{self.count} new tickets counted")
