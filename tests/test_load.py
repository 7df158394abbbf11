"""The load generator against an in-process aiohttp.web app on 127.0.0.1 that mimics
docs/app-api.md, with knobs to stall, fail a share of requests, drop sessions, truncate
streams and drop WebSockets. No Docker; each test runs in a second or two."""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from profiles import REFERENCE_PROFILE, reference_profile

from rollback_drill.errors import TargetError
from rollback_drill.http1 import Http1Pool, MalformedResponse, ServerDisconnected
from rollback_drill.ledger import content_checksum
from rollback_drill.load import DEADLINE_S, LoadConfig, LoadGenerator, require_loopback
from rollback_drill.records import Outcome, RequestRecord
from rollback_drill.traffic import Category, Credentials, CrudOp, Mix

USER = Credentials("drill", "drill-pw")
STAFF = Credentials("admin", "admin-pw")
ONLY_CRUD = {Category.CRUD: 1}
MODELS_ONLY = {CrudOp.MODELS_LIST: 1}


# -- the fake app ------------------------------------------------------------------------------


@dataclass
class Knobs:
    """What the fake app does wrong. Shares are deterministic: every ``1/share``-th request."""

    delay_s: float = 0.0  # every API answer waits this long (a stall)
    fail_every: int = 0  # every n-th API request answers 500
    failure_cause: str | None = None  # X-Failure-Cause of those 500s
    forget_sessions: bool = False  # sessions never validate (auth failures)
    truncate_stream: bool = False
    ws_drop: bool = False  # close the WebSocket after the first echo
    reject_ws: int = 0  # answer the WebSocket handshake with this status
    status_override: int = 0  # every API request answers this status
    release: str = "test"
    mark_every: int = 0  # every n-th API answer says the release slowed it (X-Release-Delay-Ms)
    bad_checksum: bool = False
    counter: int = 0
    sessions: dict[str, bool] = field(default_factory=dict)  # token -> is staff
    written: dict[str, dict[str, Any]] = field(default_factory=dict)


def _headers(knobs: Knobs, served_by: str = "wsgi") -> dict[str, str]:
    return {"X-Served-By": served_by, "X-Release": knobs.release}


def make_app(knobs: Knobs) -> web.Application:
    def session_of(request: web.Request) -> bool | None:
        token = request.cookies.get("sessionid", "")
        if knobs.forget_sessions:
            return None
        return knobs.sessions.get(token)

    @web.middleware
    async def faults(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.startswith("/ws/"):
            return await handler(request)
        knobs.counter += 1
        if knobs.delay_s:
            await asyncio.sleep(knobs.delay_s)
        if knobs.status_override:
            return web.json_response({}, status=knobs.status_override, headers=_headers(knobs))
        if knobs.fail_every and knobs.counter % knobs.fail_every == 0:
            headers = _headers(knobs)
            if knobs.failure_cause:
                headers["X-Failure-Cause"] = knobs.failure_cause
            return web.json_response({"error": "boom"}, status=500, headers=headers)
        response = await handler(request)
        if knobs.mark_every and knobs.counter % knobs.mark_every == 0:
            response.headers["X-Release-Delay-Ms"] = "5.25"
        return response

    async def login(request: web.Request) -> web.Response:
        body = await request.json()
        creds = Credentials(body.get("username", ""), body.get("password", ""))
        if creds not in (USER, STAFF):
            return web.json_response({"detail": "bad"}, status=401, headers=_headers(knobs))
        token = secrets.token_hex(8)
        knobs.sessions[token] = creds == STAFF
        response = web.json_response({"username": creds.username}, headers=_headers(knobs))
        response.set_cookie("sessionid", token)
        response.set_cookie("csrftoken", "csrf-" + token)
        return response

    def authed(
        view: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def wrapper(request: web.Request) -> web.StreamResponse:
            if session_of(request) is None:
                return web.json_response(
                    {"detail": "no session"}, status=401, headers=_headers(knobs)
                )
            return await view(request)

        return wrapper

    async def me(request: web.Request) -> web.Response:
        return web.json_response({"username": "drill"}, headers=_headers(knobs))

    async def models(request: web.Request) -> web.Response:
        results = [{"id": i, "name": f"m{i}", "provider": "p", "context_window": 8} for i in (1, 2)]
        return web.json_response({"results": results}, headers=_headers(knobs))

    async def model(request: web.Request) -> web.Response:
        return web.json_response({"id": int(request.match_info["id"])}, headers=_headers(knobs))

    async def create(request: web.Request, fields: Mapping[str, Any]) -> web.Response:
        if request.headers.get("X-CSRFToken", "").removeprefix("csrf-") != request.cookies.get(
            "sessionid"
        ):
            return web.json_response({"detail": "csrf"}, status=403, headers=_headers(knobs))
        checksum = "0" * 64 if knobs.bad_checksum else content_checksum(fields)
        knobs.written[str(fields["client_id"])] = dict(fields)
        return web.json_response(
            {**fields, "checksum": checksum}, status=201, headers=_headers(knobs)
        )

    async def sessions(request: web.Request) -> web.Response:
        if request.method == "POST":
            return await create(request, await request.json())
        return web.json_response({"results": []}, headers=_headers(knobs))

    async def session(request: web.Request) -> web.Response:
        cid = request.match_info["cid"]
        if cid not in knobs.written:
            return web.json_response({}, status=404, headers=_headers(knobs))
        return web.json_response(knobs.written[cid], headers=_headers(knobs))

    async def messages(request: web.Request) -> web.Response:
        return await create(request, await request.json())

    async def stream(request: web.Request) -> web.StreamResponse:
        n = int(request.query.get("n", "5"))
        interval = int(request.query.get("interval_ms", "50")) / 1000
        response = web.StreamResponse(headers={**_headers(knobs, "asgi")})
        response.content_type = "text/event-stream"
        await response.prepare(request)
        for i in range(n):
            await response.write(f"data: {json.dumps({'seq': i})}\n\n".encode())
            await asyncio.sleep(interval)
        if not knobs.truncate_stream:
            await response.write(b"event: end\ndata: {}\n\n")
        await response.write_eof()
        return response

    async def admin(request: web.Request) -> web.Response:
        if session_of(request) is not True:
            raise web.HTTPFound("/admin/login/?next=/admin/", headers=_headers(knobs))
        return web.Response(text="<html>admin</html>", headers=_headers(knobs))

    async def chat(request: web.Request) -> web.StreamResponse:
        if knobs.reject_ws:
            return web.Response(status=knobs.reject_ws, headers=_headers(knobs, "asgi"))
        if session_of(request) is None:
            return web.Response(status=403, headers=_headers(knobs, "asgi"))
        ws = web.WebSocketResponse()
        ws.headers.update(_headers(knobs, "asgi"))
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                break
            await ws.send_json({"echo": msg.data, "served_by": "asgi"})
            if knobs.ws_drop:
                await ws.close()
                break
        return ws

    app = web.Application(middlewares=[faults])
    app.router.add_post("/api/auth/login/", login)
    app.router.add_get("/api/auth/me/", authed(me))
    app.router.add_get("/api/models/", authed(models))
    app.router.add_get("/api/models/{id}/", authed(model))
    app.router.add_route("*", "/api/sessions/", authed(sessions))
    app.router.add_get("/api/sessions/{cid}/", authed(session))
    app.router.add_post("/api/sessions/{cid}/messages/", authed(messages))
    app.router.add_get("/api/stream/", authed(stream))
    app.router.add_get("/admin/", admin)
    app.router.add_get("/ws/chat/{room}/", chat)
    return app


@asynccontextmanager
async def fake_app(knobs: Knobs | None = None) -> AsyncIterator[tuple[str, Knobs]]:
    knobs = knobs or Knobs()
    runner = web.AppRunner(make_app(knobs), shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", knobs
    finally:
        await runner.cleanup()


def config(base_url: str, **overrides: Any) -> LoadConfig:
    settings: dict[str, Any] = {
        "rate": 50.0,
        "user": USER,
        "staff": STAFF,
        "weights": ONLY_CRUD,
        "max_concurrency": 16,
        "virtual_users": 2,
        "timeout_s": 2.0,
    }
    settings.update(overrides)
    crud = settings.pop("crud_weights", MODELS_ONLY)
    events = settings.pop("stream_events", None)
    interval = settings.pop("stream_interval_ms", 5)
    settings["profile"] = reference_profile(
        {str(op): w for op, w in crud.items()}, stream_events=events, stream_interval_ms=interval
    )
    return LoadConfig(base_url, **settings)


def outcomes(gen: LoadGenerator, category: Category | None = None) -> Mapping[Outcome, int]:
    return gen.store.window(category, 0, time.time() + 10).outcomes


# -- targets -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.5:8000", "http://example.org", "http://192.168.1.2/", "http://[2001:db8::1]/"],
)
def test_refuses_non_loopback_targets(url: str) -> None:
    with pytest.raises(TargetError, match="not loopback"):
        LoadConfig(url, rate=1, user=USER, profile=REFERENCE_PROFILE, staff=STAFF)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000/", "http://127.9.9.9", "http://[::1]:80", "http://localhost:1"]
)
def test_accepts_loopback_targets(url: str) -> None:
    assert require_loopback(url) == url.rstrip("/")


def test_refuses_other_schemes() -> None:
    with pytest.raises(TargetError, match="scheme"):
        require_loopback("ftp://127.0.0.1/")


# -- scheduling --------------------------------------------------------------------------------


def test_sends_at_the_configured_rate_for_the_duration() -> None:
    async def scenario() -> None:
        async with fake_app() as (url, _):
            gen = LoadGenerator(config(url, rate=100.0))
            stats = await gen.run(duration_s=1.0)
        assert stats.scheduled == 100
        assert stats.sent == stats.completed == 100
        assert stats.unsent == stats.in_flight == stats.abandoned == 0
        assert outcomes(gen) == {Outcome.OK: 100}
        assert stats.max_queued_s < 0.25  # on schedule (generous: CI shares its 2 cores)

    asyncio.run(scenario())


def test_stalled_server_does_not_reduce_the_schedule_and_latency_includes_the_stall() -> None:
    async def scenario() -> None:
        async with fake_app() as (url, knobs):
            gen = LoadGenerator(config(url, rate=40.0, max_concurrency=4))
            await gen.start(duration_s=0.5)
            knobs.delay_s = 0.5  # every answer stalls from now on
            await gen.wait(timeout_s=5)
            stats = await gen.stop()
        # 20 requests scheduled in 0.5 s; only 4 can be in flight at a time, each taking 0.5 s:
        # the schedule does not slip, the backlog waits, and waiting counts in the latency.
        assert stats.scheduled == 20
        assert stats.completed == 20
        window = gen.store.window(Category.CRUD, 0, time.time() + 10)
        assert window.count == 20
        assert window.p50_s is not None and window.max_s is not None
        assert window.max_s >= 2.0  # the last ones waited for 4 rounds of 0.5 s
        assert window.p50_s >= 1.0
        assert stats.max_queued_s >= 1.4

    asyncio.run(scenario())


def test_stop_mid_stall_counts_unsent_slots_and_leaves_nothing_running() -> None:
    async def scenario() -> None:
        async with fake_app() as (url, knobs):
            gen = LoadGenerator(config(url, rate=50.0, max_concurrency=2, timeout_s=5.0))
            await gen.start()
            knobs.delay_s = 0.6
            await asyncio.sleep(0.3)
            stats = await gen.stop()
            assert stats.scheduled == pytest.approx(stats.elapsed_s * 50, abs=1.5)
            assert stats.scheduled >= 14
            assert stats.sent == 2  # the two workers were stuck in the stall
            assert stats.completed == 2 and stats.in_flight == 0
            assert stats.unsent == stats.scheduled - 2
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert others == []

    asyncio.run(scenario())


def test_context_manager_stops_cleanly_and_records_latency_of_a_fixed_delay() -> None:
    async def scenario() -> None:
        async with fake_app(Knobs(delay_s=0.05)) as (url, _):
            async with LoadGenerator(config(url, rate=50.0)) as gen:
                await asyncio.sleep(0.5)
            window = gen.store.window(None, 0, time.time() + 10)
            assert gen.stats.in_flight == 0
            assert window.count >= 20
            assert window.p50_s is not None and 0.05 <= window.p50_s < 0.15
        assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []

    asyncio.run(scenario())


def test_categories_can_be_enabled_at_run_time_and_follow_the_weights() -> None:
    async def scenario() -> None:
        async with fake_app() as (url, _):
            weights = {Category.CRUD: 3, Category.WEBSOCKET: 1}
            cfg = config(url, rate=80.0, weights=weights, disabled=frozenset({Category.WEBSOCKET}))
            seen: list[RequestRecord] = []
            async with LoadGenerator(cfg) as gen:
                gen.store.append = seen.append  # type: ignore[method-assign]
                await asyncio.sleep(0.25)
                assert {r.category for r in seen} == {Category.CRUD}
                enabled_at = time.time()
                gen.enable(Category.WEBSOCKET)
                await asyncio.sleep(0.5)
            later = [r for r in seen if r.scheduled > enabled_at + 0.02]
            ws = [r for r in later if r.category == Category.WEBSOCKET]
            assert len(ws) >= 8 and {r.outcome for r in ws} == {Outcome.OK}
            assert len(later) - len(ws) == pytest.approx(3 * len(ws), abs=3)

    asyncio.run(scenario())


# -- classification ----------------------------------------------------------------------------


async def _run(knobs: Knobs, duration_s: float = 0.3, **overrides: Any) -> LoadGenerator:
    async with fake_app(knobs) as (url, _):
        gen = LoadGenerator(config(url, **overrides))
        await gen.run(duration_s)
    return gen


def test_a_failing_share_is_server_errors_with_their_failure_cause() -> None:
    gen = asyncio.run(_run(Knobs(fail_every=4, failure_cause="db-connection"), duration_s=0.8))
    window = gen.store.window(Category.CRUD, 0, time.time() + 10)
    assert window.count == 40
    assert window.outcomes == {Outcome.OK: 30, Outcome.SERVER_ERROR: 10}
    assert window.error_share == pytest.approx(0.25)
    assert window.db_connection_failure_share == pytest.approx(0.25)
    assert window.redis_connection_failures == 0


def test_redis_failure_cause_is_counted() -> None:
    gen = asyncio.run(_run(Knobs(fail_every=2, failure_cause="redis-connection")))
    window = gen.store.window(None, 0, time.time() + 10)
    assert window.redis_connection_failures == window.outcomes[Outcome.SERVER_ERROR] > 0


def test_lost_sessions_are_auth_failures_and_users_log_in_again() -> None:
    knobs = Knobs()

    async def scenario() -> LoadGenerator:
        async with fake_app(knobs) as (url, _):
            gen = LoadGenerator(config(url))
            await gen.start()
            knobs.forget_sessions = True
            await asyncio.sleep(0.2)
            await gen.stop()
        return gen

    gen = asyncio.run(scenario())
    assert set(outcomes(gen)) == {Outcome.AUTH_FAILURE}
    assert gen.stats.relogins >= 2


def test_auth_category_classifies_me_401_with_a_fresh_session() -> None:
    async def scenario() -> LoadGenerator:
        knobs = Knobs()
        async with fake_app(knobs) as (url, _):
            gen = LoadGenerator(config(url, weights={Category.AUTH: 1}))
            await gen.start()
            await asyncio.sleep(0.2)
            knobs.forget_sessions = True
            await asyncio.sleep(0.2)
            await gen.stop()
        return gen

    result = outcomes(asyncio.run(scenario()), Category.AUTH)
    assert result[Outcome.OK] >= 5 and result[Outcome.AUTH_FAILURE] >= 5
    assert set(result) == {Outcome.OK, Outcome.AUTH_FAILURE}


def test_other_4xx_are_client_errors_and_5xx_server_errors() -> None:
    gen = asyncio.run(_run(Knobs(status_override=404)))
    assert set(outcomes(gen)) == {Outcome.CLIENT_ERROR}
    gen = asyncio.run(_run(Knobs(status_override=503)))
    assert set(outcomes(gen)) == {Outcome.SERVER_ERROR}


def test_connection_refused_is_a_connect_error() -> None:
    async def scenario() -> LoadGenerator:
        async with fake_app() as (url, _):
            pass  # the port is closed again
        gen = LoadGenerator(config(url))
        await gen.run(0.2)
        return gen

    gen = asyncio.run(scenario())
    assert set(outcomes(gen)) == {Outcome.CONNECT_ERROR}
    assert gen.store.window(None, 0, time.time() + 10).count == 10


def test_a_request_slower_than_the_timeout_is_a_timeout() -> None:
    async def scenario() -> LoadGenerator:
        async with fake_app() as (url, knobs):
            gen = LoadGenerator(config(url, timeout_s=0.3))
            await gen.start(duration_s=0.1)
            knobs.delay_s = 1.0
            await gen.wait(timeout_s=5)
            await gen.stop()
        return gen

    gen = asyncio.run(scenario())
    window = gen.store.window(None, 0, time.time() + 10)
    assert window.outcomes == {Outcome.TIMEOUT: 5}
    assert window.max_s is not None and 0.3 <= window.max_s < 1.0


def test_admin_with_staff_session_is_ok_and_a_redirect_to_login_is_an_auth_failure() -> None:
    gen = asyncio.run(_run(Knobs(), weights={Category.ADMIN: 1}))
    assert outcomes(gen) == {Outcome.OK: 15}
    gen = asyncio.run(_run(Knobs(forget_sessions=True), weights={Category.ADMIN: 1}))
    assert set(outcomes(gen)) == {Outcome.AUTH_FAILURE}


def test_streaming_reads_to_the_end_and_a_truncated_stream_fails() -> None:
    gen = asyncio.run(_run(Knobs(), weights={Category.STREAMING: 1}))
    window = gen.store.window(Category.STREAMING, 0, time.time() + 10)
    assert window.outcomes == {Outcome.OK: 15}
    assert window.p50_s is not None and window.p50_s >= 0.025  # 5 events, 5 ms apart
    gen = asyncio.run(_run(Knobs(truncate_stream=True), weights={Category.STREAMING: 1}))
    assert outcomes(gen) == {Outcome.SERVER_ERROR: 15}


def test_websocket_echoes_ok_drops_and_rejections() -> None:
    ws_only = {Category.WEBSOCKET: 1}
    gen = asyncio.run(_run(Knobs(), weights=ws_only))
    assert outcomes(gen) == {Outcome.OK: 15}
    gen = asyncio.run(_run(Knobs(ws_drop=True), weights=ws_only))
    assert outcomes(gen) == {Outcome.WS_DISCONNECT: 15}
    gen = asyncio.run(_run(Knobs(forget_sessions=True), weights=ws_only))
    assert set(outcomes(gen)) == {Outcome.AUTH_FAILURE}
    gen = asyncio.run(_run(Knobs(reject_ws=404), weights=ws_only))
    assert outcomes(gen) == {Outcome.CLIENT_ERROR: 15}


def test_records_carry_served_by_release_and_scheduled_times() -> None:
    async def scenario() -> list[str]:
        lines: list[str] = []
        async with fake_app(Knobs(release="hybrid")) as (url, _):
            gen = LoadGenerator(config(url, rate=20.0, weights={Category.STREAMING: 1}))
            gen.store.append = lambda record: lines.append(record.to_json())  # type: ignore[method-assign]
            await gen.run(0.2)
        return lines

    records = [json.loads(line) for line in asyncio.run(scenario())]
    assert len(records) == 4
    assert {(r["served_by"], r["release"]) for r in records} == {("asgi", "hybrid")}
    scheduled = sorted(r["scheduled"] for r in records)
    assert [round(b - a, 3) for a, b in itertools.pairwise(scheduled)] == [0.05] * 3
    for r in records:
        assert r["latency_s"] == pytest.approx(r["ended"] - r["scheduled"], abs=1e-3)


def test_answers_the_release_marks_as_slowed_are_recorded_as_delayed() -> None:
    async def scenario() -> LoadGenerator:
        async with fake_app(Knobs(mark_every=4)) as (url, _):
            gen = LoadGenerator(config(url, rate=100.0))
            await gen.run(0.4)
        return gen

    gen = asyncio.run(scenario())
    hist = gen.store.histogram(Category.CRUD, 0, time.time() + 10, delayed=True)
    assert sum(n for _, n in hist) == 10  # 40 requests, every 4th marked
    delays = gen.store.delays(Category.CRUD, 0, time.time() + 10)
    assert [(round(v * 1000, 2), n) for v, n in delays] == [(5.25, 10)]


def test_spin_sends_no_request_before_its_slot_and_misses_none() -> None:
    async def scenario() -> tuple[LoadGenerator, list[RequestRecord]]:
        seen: list[RequestRecord] = []
        async with fake_app() as (url, _):
            gen = LoadGenerator(config(url, rate=100.0, spin_s=0.002))
            gen.store.append = seen.append  # type: ignore[method-assign]
            stats = await gen.run(0.5)
        assert stats.sent == stats.completed == 50
        return gen, seen

    _, seen = asyncio.run(scenario())
    assert len(seen) == 50
    assert all(r.started >= r.scheduled for r in seen)
    with pytest.raises(ValueError, match="spin_s"):
        config("http://127.0.0.1:1", spin_s=0.5)


# -- writes and the ledger ---------------------------------------------------------------------


def test_writes_are_acknowledged_in_the_ledger_with_matching_checksums() -> None:
    writes = {CrudOp.SESSION_CREATE: 1, CrudOp.MESSAGE_CREATE: 1, CrudOp.SESSION_GET: 1}
    knobs = Knobs()
    gen = asyncio.run(_run(knobs, duration_s=0.6, crud_weights=writes))
    acked = gen.ledger.acked()
    assert len(acked) >= 15 and gen.ledger.unacknowledged() == []
    assert all(a.checksum_matches and a.status == 201 for a in acked)
    assert {a.client_id for a in acked} == set(knobs.written)
    kinds = {a.attempt.kind for a in acked}
    assert kinds == {"session", "message"}
    assert all(a.attempt.parent in knobs.written for a in acked if a.attempt.kind == "message")
    assert outcomes(gen) == {Outcome.OK: 30}


def test_failed_writes_are_unacknowledged_not_lost_and_bad_checksums_are_flagged() -> None:
    creates = {CrudOp.SESSION_CREATE: 1}
    gen = asyncio.run(_run(Knobs(fail_every=3), duration_s=0.6, crud_weights=creates))
    unacked = gen.ledger.unacknowledged()
    assert len(unacked) == 10 and {u.reason for u in unacked} == {"http 500"}
    assert len(gen.ledger.acked()) == 20
    gen = asyncio.run(_run(Knobs(bad_checksum=True), duration_s=0.2, crud_weights=creates))
    assert len(gen.ledger.checksum_mismatches()) == len(gen.ledger.acked()) == 10


def test_timed_out_writes_are_unacknowledged() -> None:
    creates = {CrudOp.SESSION_CREATE: 1}
    knobs = Knobs()

    async def scenario() -> LoadGenerator:
        async with fake_app(knobs) as (url, _):
            gen = LoadGenerator(config(url, crud_weights=creates, timeout_s=0.2))
            await gen.start()
            knobs.delay_s = 0.5
            await asyncio.sleep(0.1)
            await gen.stop()
        return gen

    gen = asyncio.run(scenario())
    assert {u.reason for u in gen.ledger.unacknowledged()} == {"CancelledError"}
    assert set(outcomes(gen)) == {Outcome.TIMEOUT}


# -- the HTTP/1.1 client on raw answers --------------------------------------------------------


@asynccontextmanager
async def raw_server(answers: list[bytes]) -> AsyncIterator[tuple[int, list[int]]]:
    """Answer each request with the next raw bytes (then close when the answer says so)."""
    connections: list[int] = []
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        writers.append(writer)
        try:
            while answers:
                await reader.readuntil(b"\r\n\r\n")
                answer = answers.pop(0)
                writer.write(answer.replace(b"|CLOSE", b""))
                await writer.drain()
                if answer.endswith(b"|CLOSE"):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], connections
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


def test_http1_keep_alive_chunked_close_delimited_and_connection_close() -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Served-By: wsgi\r\n\r\nok"
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n"
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nz|CLOSE"
    eof = b"HTTP/1.0 200 OK\r\n\r\nuntil the end|CLOSE"

    async def scenario() -> None:
        async with raw_server([ok, chunked, closing, ok, eof]) as (port, connections):
            pool = Http1Pool("127.0.0.1", port)
            first = await pool.request("GET", "/a")
            assert (first.status, first.body, first.headers["x-served-by"]) == (200, b"ok", "wsgi")
            assert (await pool.request("GET", "/b")).body == b"abc"
            assert (await pool.request("GET", "/c")).body == b"z"
            assert len(connections) == 1  # kept alive until "Connection: close"
            assert (await pool.request("GET", "/d")).body == b"ok"
            assert len(connections) == 2
            last = await pool.request("GET", "/e")
            assert (last.body, last.complete) == (b"until the end", True)
            await pool.close()

    asyncio.run(scenario())


def test_http1_broken_answers_raise_standard_errors() -> None:
    half = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc|CLOSE"
    garbage = b"SMTP ready\r\n\r\n"

    async def scenario() -> None:
        async with raw_server([half, garbage]) as (port, _):
            pool = Http1Pool("127.0.0.1", port)
            with pytest.raises(ServerDisconnected):
                await pool.request("GET", "/")
            with pytest.raises(MalformedResponse):
                await pool.request("GET", "/")
            await pool.close()
        with pytest.raises(ConnectionRefusedError):
            await Http1Pool("127.0.0.1", port).request("GET", "/")

    asyncio.run(scenario())


def test_http1_stop_at_returns_early_and_drops_the_connection() -> None:
    stream = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n11\r\nevent: end\ndata:\n\r\n"
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    async def scenario() -> None:
        async with raw_server([stream, ok]) as (port, connections):
            pool = Http1Pool("127.0.0.1", port)
            reply = await pool.request("GET", "/s", stop_at=b"event: end")
            assert reply.complete is False and b"event: end" in reply.body
            assert (await pool.request("GET", "/")).body == b"ok"
            assert len(connections) == 2
            await pool.close()

    asyncio.run(scenario())


def test_start_is_bounded_by_the_timeout_when_the_target_stalls() -> None:
    async def scenario() -> None:
        async with fake_app(Knobs(delay_s=5.0)) as (url, _):
            gen = LoadGenerator(config(url, timeout_s=0.3))
            began = time.perf_counter()
            await gen.start()
            assert time.perf_counter() - began < 2.0  # not the 5 s stall
            await gen.stop(grace_s=0.5)

    asyncio.run(scenario())


# -- the mix -----------------------------------------------------------------------------------


def test_mix_gives_exact_shares_and_redistributes_disabled_categories() -> None:
    mix = Mix({Category.CRUD: 6, Category.AUTH: 1, Category.ADMIN: 1, Category.WEBSOCKET: 2})
    picks = [mix.next() for _ in range(100)]
    assert {c: picks.count(c) for c in set(picks)} == {
        Category.CRUD: 60,
        Category.AUTH: 10,
        Category.ADMIN: 10,
        Category.WEBSOCKET: 20,
    }
    assert picks[:10].count(Category.CRUD) == 6  # interleaved, not in runs
    mix.disable(Category.WEBSOCKET)
    assert mix.share(Category.WEBSOCKET) == 0.0 and mix.share(Category.CRUD) == 0.75
    assert Category.WEBSOCKET not in {mix.next() for _ in range(80)}
    mix.enable(Category.WEBSOCKET)
    assert mix.share(Category.WEBSOCKET) == 0.2
    for category in list(mix.enabled()):
        mix.disable(category)
    assert mix.next() is None


def test_mix_rejects_bad_weights() -> None:
    with pytest.raises(ValueError, match="at least one category"):
        Mix({Category.CRUD: 0})
    with pytest.raises(ValueError, match="int >= 0"):
        Mix({Category.CRUD: -1})
    with pytest.raises(ValueError, match="no weight"):
        Mix({Category.CRUD: 1}).enable(Category.ADMIN)


def test_config_needs_staff_for_admin_and_a_positive_rate() -> None:
    with pytest.raises(ValueError, match="staff"):
        LoadConfig("http://127.0.0.1:1", rate=1, user=USER, profile=REFERENCE_PROFILE)
    LoadConfig(
        "http://127.0.0.1:1",
        rate=1,
        user=USER,
        profile=REFERENCE_PROFILE,
        disabled=frozenset({Category.ADMIN}),
    )
    with pytest.raises(ValueError, match="rate"):
        LoadConfig("http://127.0.0.1:1", rate=0, user=USER, profile=REFERENCE_PROFILE, staff=STAFF)


def test_deadlines_per_category_and_their_validation() -> None:
    cfg = config("http://127.0.0.1:1", stream_events=5, stream_interval_ms=50)
    assert cfg.deadline_s == DEADLINE_S == 2.0
    assert cfg.deadline(Category.CRUD) == cfg.deadline(Category.WEBSOCKET) == 2.0
    assert cfg.deadline(Category.STREAMING) == pytest.approx(2.25)  # its 5 events take 0.25 s
    assert config("http://127.0.0.1:1", deadline_s=None).deadline(Category.CRUD) is None
    with pytest.raises(ValueError, match="deadline_s"):
        config("http://127.0.0.1:1", deadline_s=0.0)
