"""The executor's own checks after a phase: the plan's smoke test and full health check.

The plan calls ``./scripts/smoke-test.sh`` and ``./scripts/full-health-check.sh`` without
defining them; these are the executor's versions, built from the plan's Rollback Validation
Checklist (the shell versions in ``scripts/`` check the same things with curl).
"""

from __future__ import annotations

import httpx

from rollback_drill.errors import RollbackError
from rollback_drill.probe import probe
from rollback_drill.stack import Stack
from rollback_drill.traffic import Category
from rollback_drill.wait import wait_for

__all__ = ["containers_healthy", "full_health_check", "smoke_test"]

HEALTH_TIMEOUT_S = 60.0


def _health(stack: Stack) -> tuple[int, dict[str, str]]:
    try:
        answer = httpx.get(stack.base_url + stack.target.paths.health, timeout=5)
    except httpx.HTTPError:
        return 0, {}
    return answer.status_code, {k.lower(): v for k, v in answer.headers.items()}


def smoke_test(stack: Stack, release: str, timeout_s: float = HEALTH_TIMEOUT_S) -> str:
    """Health 200, the login and every CRUD request of the target's profile as expected; where
    the app names its release and server in headers (the profile's ``headers``): ``release``
    answering, from the WSGI server."""
    t = stack.target
    status, headers = wait_for(
        lambda: _health(stack),
        lambda h: h[0] == 200,
        timeout_s=timeout_s,
        what=f"{t.paths.health} to answer 200",
        interval_s=0.5,
    )
    problems = []
    names = t.traffic.headers
    if names.release and headers.get(names.release.lower()) != release:
        problems.append(f"release {headers.get(names.release.lower())!r} answers, not {release!r}")
    if names.served_by and headers.get(names.served_by.lower()) != "wsgi":
        problems.append(f"health served by {headers.get(names.served_by.lower())!r}, not wsgi")
    ws = stack.workspace
    auth = [Category.AUTH] if t.traffic.categories.auth is not None else []
    probed = probe(
        stack.base_url, t.traffic, ws.user, ws.admin, categories=auth, crud_requests=True
    )
    problems += [f"{key}: {why}" for key, why in probed.failed().items()]
    if problems:
        raise RollbackError("smoke test failed: " + "; ".join(problems))
    return f"health {status}; " + ", ".join(f"{k} ok" for k in probed.results)


def containers_healthy(stack: Stack) -> str:
    """Every container of the project running, and healthy where it has a health check."""
    rows = stack.ps()
    bad = [
        f"{r.get('Name')}={r.get('Health') or r.get('State')}"
        for r in rows
        if r.get("State") != "running" or r.get("Health") not in ("", None, "healthy")
    ]
    if bad or not rows:
        raise RollbackError(f"containers not healthy: {', '.join(bad) or 'none running'}")
    return ", ".join(sorted(f"{r.get('Service')}:{r.get('Health') or 'running'}" for r in rows))


def full_health_check(stack: Stack, release: str) -> str:
    """The Rollback Validation Checklist's checks that need no metrics: containers healthy,
    health 200, user login and API data (the smoke test), the admin panel with the staff user."""
    out = [containers_healthy(stack), smoke_test(stack, release)]
    t, ws = stack.target, stack.workspace
    if t.traffic.categories.admin is not None:
        admin = probe(stack.base_url, t.traffic, ws.user, ws.admin, categories=[Category.ADMIN])
        failed = admin.failed()
        if failed:
            raise RollbackError(f"admin panel {t.paths.admin}: {failed['admin']}")
        out.append(f"admin panel {t.paths.admin} ok with the staff user")
    return "; ".join(out)
