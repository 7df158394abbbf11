"""First drill: the two releases are what the plan assumes they are.

Pre-hybrid: everything is served by WSGI (streaming falls back to it, WebSockets cannot
upgrade). After a real hybrid deployment: streaming and WebSockets are served by ASGI (proved by
the ``X-Served-By`` header), CRUD still by WSGI, and the release's migrations are applied;
ASGI reuses pooled PostgreSQL connections instead of opening one per request.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import psycopg
import pytest
import websockets

from rollback_drill.client import AppClient
from rollback_drill.deploy import deploy_release
from rollback_drill.errors import NotOnThisTarget
from rollback_drill.stack import Stack
from rollback_drill.target import Target

pytestmark = [pytest.mark.quick, pytest.mark.full, pytest.mark.nightly]


@pytest.fixture(autouse=True)
def _reference_contract(drill_target: Target) -> None:
    """This drill reads the reference app's own evidence (its ``X-Served-By`` header, its
    0011 migrations, its pooled connections): on another target it says so and skips, before
    any stack is started."""
    if drill_target.traffic.headers.served_by is None:
        raise NotOnThisTarget(
            "the hybrid routing drill reads which server answered from a header the app sets "
            "(traffic.headers.served_by); this target's app sets none"
        )


def applied_migrations(stack: Stack, app: str) -> list[str]:
    with psycopg.connect(stack.postgres_dsn(), connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT name FROM django_migrations WHERE app = %s ORDER BY name", (app,)
        ).fetchall()
    return [r[0] for r in rows]


def one_value(stack: Stack, sql: str, *params: object) -> Any:
    with psycopg.connect(stack.postgres_dsn(), connect_timeout=5) as conn:
        row = conn.execute(sql, params).fetchone()
    assert row is not None, sql
    return row[0]


def sessions_established(stack: Stack) -> int:
    """PostgreSQL's count of sessions ever established to the app's database (PG >= 14)."""
    sql = "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
    return int(one_value(stack, sql))


def postgres_setting(stack: Stack, name: str) -> str:
    return str(one_value(stack, "SELECT setting FROM pg_settings WHERE name = %s", name))


def first_model_id(client: AppClient) -> int:
    models = client.get("/api/models/")
    assert models.status == 200, models.body
    return int(models.body["results"][0]["id"])


def test_pre_hybrid_then_hybrid_routing(fresh_stack: Stack) -> None:
    stack = fresh_stack
    user, admin = stack.workspace.user, stack.workspace.admin
    prev, nxt = stack.target.releases.previous, stack.target.releases.next
    with AppClient(stack.base_url) as client:
        # --- pre-hybrid: everything on WSGI ---------------------------------------------------
        health = client.get(stack.target.paths.health)
        assert (health.status, health.served_by, health.release) == (200, "wsgi", prev), health
        assert client.get("/admin/login/").status == 200
        assert client.login(user.username, user.password).status == 200
        assert client.get("/api/auth/me/").body["username"] == user.username
        assert client.admin_login(admin.username, admin.password) == 200

        cid = str(uuid.uuid4())
        created = client.create_session("before deploy", first_model_id(client), cid)
        assert created.status == 201, created.body
        read = client.get(f"/api/sessions/{cid}/")
        assert (read.status, read.body["title"], read.body["checksum"]) == (
            200,
            "before deploy",
            created.body["checksum"],
        )

        answer, events = client.stream(n=3)
        assert (answer.status, answer.served_by) == (200, "wsgi")
        assert [e["seq"] for e in events] == [0, 1, 2]
        assert {e["served_by"] for e in events} == {"wsgi"}
        with pytest.raises(
            (websockets.exceptions.InvalidStatus, websockets.exceptions.InvalidHandshake)
        ):
            client.ws_echo("hello")
        assert "0011" not in " ".join(applied_migrations(stack, "ai_model"))
        # the reference PostgreSQL commits without fsync unless asked (the compose file: why)
        assert postgres_setting(stack, "fsync") == os.environ.get("POSTGRES_FSYNC", "off")

        # --- deploy hybrid ----------------------------------------------------------------------
        commit = deploy_release(stack, nxt)
        assert commit == stack.workspace.commits[nxt]

        # --- hybrid: streaming and WebSockets on ASGI, CRUD on WSGI -----------------------------
        answer, events = client.stream(n=3)
        assert (answer.status, answer.served_by, answer.release) == (200, "asgi", nxt)
        assert {e["served_by"] for e in events} == {"asgi"}
        reply = client.ws_echo("hello")
        assert reply == {"echo": "hello", "served_by": "asgi"}
        crud = client.get(f"/api/sessions/{cid}/")
        assert (crud.status, crud.served_by, crud.release) == (200, "wsgi", nxt)
        assert crud.body["checksum"] == created.body["checksum"]
        for app in stack.target.migration_rollback:
            assert any(name.startswith("0011") for name in applied_migrations(stack, app)), app

        # --- ASGI draws its PostgreSQL connections from a pool ---------------------------------
        # Each stream's login check and each WebSocket's user lookup needs the database; one
        # fresh connection apiece (a fork and a SCRAM handshake in PostgreSQL) tripled the
        # database's CPU at the drills' default load.
        before = sessions_established(stack)
        pairs = 10
        for i in range(pairs):
            answer, _ = client.stream(n=1)
            assert (answer.status, answer.served_by) == (200, "asgi"), answer
            assert client.ws_echo(f"pooled {i}")["served_by"] == "asgi"
        opened = sessions_established(stack) - before
        assert opened < pairs, f"{opened} PostgreSQL sessions opened for {2 * pairs} ASGI requests"
