"""The executor's own checks after a phase: the plan's smoke test and full health check.

The plan calls ``./scripts/smoke-test.sh`` and ``./scripts/full-health-check.sh`` without
defining them; these are the executor's versions, built from the plan's Rollback Validation
Checklist (the shell versions in ``scripts/`` check the same things with curl).
"""

from __future__ import annotations

from typing import Any

from rollback_drill.client import AppClient
from rollback_drill.errors import RollbackError
from rollback_drill.stack import Stack
from rollback_drill.wait import wait_for

__all__ = ["containers_healthy", "full_health_check", "smoke_test"]

HEALTH_TIMEOUT_S = 60.0


def _health(stack: Stack, client: AppClient) -> dict[str, Any]:
    answer = client.get(stack.target.paths.health)
    body = answer.body if isinstance(answer.body, dict) else {}
    return {
        "status": answer.status,
        "served_by": answer.served_by,
        "release": answer.release,
        **{k: body.get(k) for k in ("db", "redis")},
    }


def smoke_test(stack: Stack, release: str, timeout_s: float = HEALTH_TIMEOUT_S) -> str:
    """Health 200 (DB and Redis ok) from ``release`` served by WSGI, login, API data."""
    t = stack.target
    with AppClient(stack.base_url) as client:
        health = wait_for(
            lambda: _health(stack, client),
            lambda h: h["status"] == 200,
            timeout_s=timeout_s,
            what=f"{t.paths.health} to answer 200",
            interval_s=0.5,
        )
        problems = []
        if (health["db"], health["redis"]) != ("ok", "ok"):
            problems.append(f"health says db={health['db']} redis={health['redis']}")
        if health["release"] != release:
            problems.append(f"release {health['release']!r} answers, not {release!r}")
        if health["served_by"] != "wsgi":
            problems.append(f"health served by {health['served_by']!r}, not wsgi")
        login = client.login(stack.workspace.user.username, stack.workspace.user.password)
        if login.status != 200:
            problems.append(f"login answered {login.status}")
        models = client.get("/api/models/")
        results = models.body.get("results") if isinstance(models.body, dict) else None
        if models.status != 200 or not isinstance(results, list) or not results:
            problems.append(f"/api/models/ answered {models.status} with {str(results)[:60]}")
    if problems or not isinstance(results, list):
        raise RollbackError("smoke test failed: " + "; ".join(problems))
    return f"health 200 ({release}, wsgi, db ok, redis ok); login 200; {len(results)} models"


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
    DB and Redis (health), health 200, admin panel, user and admin login, API data."""
    out = [containers_healthy(stack), smoke_test(stack, release)]
    t = stack.target
    with AppClient(stack.base_url) as client:
        admin = client.get(t.paths.admin)
        if admin.status not in (200, 302):
            raise RollbackError(f"admin panel {t.paths.admin} answered {admin.status}")
        admin_user = stack.workspace.admin
        staff = client.admin_login(admin_user.username, admin_user.password)
        if staff != 200:
            raise RollbackError(f"admin login answered {staff}")
    out.append(f"admin {admin.status}, admin login 200")
    return "; ".join(out)
