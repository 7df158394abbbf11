"""One request of each category (or each CRUD request) of a target's traffic profile, sent
through the load's own code (:class:`~rollback_drill.actions.Actions`), outside any load.

What asks "does the stack answer as its profile says?" uses this: ``watch``'s preflight before
it captures a baseline, and the validation checklist's login, admin and API items after a
rollback. One code path for the load and the checks: a profile that describes the stack wrongly
fails both the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from rollback_drill.actions import Actions, ActionSettings, Result
from rollback_drill.http1 import Http1Pool
from rollback_drill.ledger import Ledger
from rollback_drill.load import require_loopback
from rollback_drill.profile import TrafficProfile
from rollback_drill.records import Outcome
from rollback_drill.traffic import Category, Credentials

__all__ = ["ProbeResult", "probe"]


@dataclass
class ProbeResult:
    """Each probed category or CRUD request (``crud:<name>``) and what it answered."""

    results: dict[str, Result] = field(default_factory=dict)
    ledger: Ledger = field(default_factory=Ledger)

    def failed(self) -> dict[str, str]:
        return {
            key: f"{r.outcome} (HTTP {r.status})"
            for key, r in self.results.items()
            if r.outcome is not Outcome.OK
        }


async def _probe(
    base_url: str,
    profile: TrafficProfile,
    user: Credentials,
    staff: Credentials | None,
    categories: list[Category],
    crud_requests: bool,
    settings: ActionSettings,
) -> ProbeResult:
    base = require_loopback(base_url)
    parts = urlsplit(base)
    http = Http1Pool(parts.hostname or "127.0.0.1", parts.port or 80)
    out = ProbeResult()
    try:
        actions = Actions(
            base,
            http,
            profile=profile,
            user=user,
            staff=staff,
            ledger=out.ledger,
            virtual_users=1,
            settings=settings,
        )
        for category in categories:
            out.results[category.value] = await actions.run(category)
        if crud_requests and profile.categories.crud is not None:
            # the requests that fill pools first: the others read what they wrote or captured
            ordered = sorted(
                profile.categories.crud.requests,
                key=lambda r: 0 if (r.write or r.capture) and not r.pools() else 1,
            )
            for request in ordered:
                key = f"crud:{request.name}"
                out.results[key] = await actions.run(Category.CRUD, request.name)
    finally:
        await http.close()
    return out


def probe(
    base_url: str,
    profile: TrafficProfile,
    user: Credentials,
    staff: Credentials | None,
    *,
    categories: Iterable[Category] = (),
    crud_requests: bool = False,
    timeout_s: float = 10.0,
    connect_timeout_s: float = 3.0,
) -> ProbeResult:
    """Send one request of each of ``categories`` (and with ``crud_requests`` each CRUD
    request of the profile once); writes go through the returned ledger."""
    settings = ActionSettings(timeout_s, connect_timeout_s)
    return asyncio.run(
        _probe(base_url, profile, user, staff, list(categories), crud_requests, settings)
    )
