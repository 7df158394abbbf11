"""A stack that stops answering is noticed at once (issue 19, point 4): requests outstanding
past their deadline are timeouts in the windows from the deadline on, not when the client gives
up; a late answer replaces the provisional timeout; and the monitor with the shipped policy,
time-scaled by 10, decides ``service_unavailable`` within 5 s of the stop.

The target is a bare asyncio HTTP/1.1 server on 127.0.0.1 (``HangingTarget``) that answers at
once until ``hang()`` and then holds every request unanswered until ``answer()``. No Docker;
each scenario takes a few seconds of wall time (the windows are real time)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from profiles import reference_profile

from rollback_drill.baseline import Baseline
from rollback_drill.decisions import Decision, DecisionKind
from rollback_drill.load import DEADLINE_S, LoadConfig, LoadGenerator
from rollback_drill.monitor import LiveSource, Monitor
from rollback_drill.policy import load_policy
from rollback_drill.records import Outcome
from rollback_drill.traffic import Category, Credentials

TIME_SCALE = 10.0  # the quick drills' default
RATE = 40.0  # the drills' default load
BUDGET_S = 5.0  # the goal: a stack that stops answering is decided within this

_BODY = b'{"results":[{"id":1,"name":"m1","provider":"p","context_window":8}]}'


def _reply(body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Served-By: wsgi\r\n"
        b"X-Release: test\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n"
        + extra
        + b"\r\n"
        + body
    )


_OK = _reply(_BODY)
_LOGIN = _reply(b'{"username":"drill"}', b"Set-Cookie: sessionid=s; Path=/\r\n")


class HangingTarget:
    """Answers every request at once until ``hang()``; from then on reads requests and holds
    them unanswered (a paused backend: the kernel still accepts connections) until
    ``answer()``, which answers the held ones and every later one."""

    def __init__(self) -> None:
        self.answering = asyncio.Event()
        self.answering.set()
        self.hung_at: float | None = None
        self.held = 0
        self.writers: set[asyncio.StreamWriter] = set()

    def hang(self) -> float:
        self.answering.clear()
        self.hung_at = time.time()
        return self.hung_at

    def answer(self) -> None:
        self.answering.set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.lower().split(b"\r\n"):
                    if line.startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                if not self.answering.is_set():
                    self.held += 1
                    await self.answering.wait()
                target = head.split(b" ", 2)[1]
                writer.write(_LOGIN if target.startswith(b"/api/auth/login/") else _OK)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()


@asynccontextmanager
async def hanging_target() -> AsyncIterator[tuple[str, HangingTarget]]:
    target = HangingTarget()
    server = await asyncio.start_server(target.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", target
    finally:
        target.answer()
        server.close()
        for writer in list(target.writers):
            writer.close()
        await server.wait_closed()


def _config(url: str, **overrides: Any) -> LoadConfig:
    settings: dict[str, Any] = {
        "rate": RATE,
        "user": Credentials("drill", "pw"),
        "weights": {Category.CRUD: 1},
        "profile": reference_profile({"models_list": 1}),
        "virtual_users": 2,
        "timeout_s": 10.0,  # the default: the client gives up only after 10 s
    }
    settings.update(overrides)
    return LoadConfig(url, **settings)


# -- the windows -------------------------------------------------------------------------------


def test_overdue_requests_are_timeouts_one_second_after_their_deadline_then_replaced() -> None:
    async def scenario() -> None:
        async with hanging_target() as (url, target):
            # 16 workers: at 40 req/s they are all stuck after 0.4 s, the rest queue
            gen = LoadGenerator(_config(url, max_concurrency=16))
            await gen.start()
            await asyncio.sleep(1.0)
            stopped = target.hang()
            await asyncio.sleep(DEADLINE_S + 1.0)  # a second past the first deadlines
            store = gen.store
            now = time.time()
            # the requests scheduled in the first second of the hang, 1 s past their deadline
            crud = store.window(Category.CRUD, stopped, now, now=now)
            every = store.window(None, stopped, now, now=now)
            assert target.held >= 16
            assert set(every.outcomes) <= {Outcome.OK, Outcome.TIMEOUT}  # OK: before the stop
            assert every.overdue >= RATE * 1.0 - 2  # ~40: scheduled in [stop, stop + 1 s)
            assert every.outcomes[Outcome.TIMEOUT] == every.overdue
            # in flight (a category drawn, one worker each) vs queued (only in the total)
            assert 14 <= crud.overdue <= 16 < every.overdue
            # the P95 counts each at its lower bound: it has waited at least the deadline
            assert every.p95_s is not None and every.p95_s >= DEADLINE_S
            assert every.max_s is not None and every.max_s >= DEADLINE_S + 0.9

            # answered late: every provisional timeout is replaced by its final record, and
            # no reader (another thread, as the monitor) ever sees a request counted twice
            counted_twice: list[str] = []
            done = threading.Event()

            def reader() -> None:
                while not done.is_set():
                    count = store.window(None, 0, time.time() + 10).count
                    scheduled = gen.stats.scheduled
                    if count > scheduled:
                        counted_twice.append(f"{count} records of {scheduled} scheduled")

            thread = threading.Thread(target=reader)
            thread.start()
            try:
                target.answer()
                await asyncio.sleep(1.0)
                stats = await gen.stop()
            finally:
                done.set()
                thread.join()
            assert counted_twice == []
            after = store.window(None, 0, time.time() + 10)
            assert after.overdue == 0
            assert after.count == stats.completed == stats.sent
            assert after.outcomes == {Outcome.OK: stats.completed}
            late = store.window(None, stopped, time.time() + 10)
            assert late.max_s is not None and late.max_s >= DEADLINE_S + 1.0  # slow, not failed

    asyncio.run(scenario())


def test_without_deadlines_an_unanswered_request_is_nothing_until_the_timeout() -> None:
    async def scenario() -> None:
        async with hanging_target() as (url, target):
            gen = LoadGenerator(_config(url, deadline_s=None))
            await gen.start()
            await asyncio.sleep(0.5)
            stopped = target.hang()
            await asyncio.sleep(DEADLINE_S + 1.0)
            window = gen.store.window(None, stopped, time.time())
            assert Outcome.TIMEOUT not in window.outcomes and window.overdue == 0
            assert target.held >= RATE * 1.5  # every worker stuck on an unanswered request
            target.answer()
            await gen.stop()

    asyncio.run(scenario())


# -- the monitor and the shipped policy --------------------------------------------------------


async def _time_to_detect(deadline_s: float | None, give_up_s: float) -> float | None:
    """Seconds from the stop until the monitor (shipped policy, time scale 10, 1-s ticks as in
    the drills) decided ``service_unavailable``; None if not within ``give_up_s``."""
    policy = load_policy().scaled(TIME_SCALE)
    async with hanging_target() as (url, target):
        gen = LoadGenerator(_config(url, deadline_s=deadline_s))
        await gen.start()
        monitor = Monitor(
            policy,
            Baseline.from_mapping(policy, {}),
            LiveSource(gen.store),
            tick_s=1.0,
            deployed_at=time.time(),
        )
        monitor.start()
        try:
            await asyncio.sleep(4.0)  # longer than the 3 s window: it holds answers first
            stopped = target.hang()

            def decided() -> Decision | None:
                return next(
                    (d for d in monitor.snapshot() if d.trigger_id == "service_unavailable"),
                    None,
                )

            give_up = time.monotonic() + give_up_s
            while decided() is None and time.monotonic() < give_up:
                await asyncio.sleep(0.05)
            found = decided()
            early = [
                d.trigger_id
                for d in monitor.snapshot()
                if d.time < stopped and d.kind is not DecisionKind.MONITOR
            ]
            assert early == [], f"decided before the stop: {early}"
        finally:
            monitor.stop()
            target.answer()
            await gen.stop(grace_s=2.0)
    return None if found is None else found.time - stopped


def test_the_monitor_decides_service_unavailable_within_5_s_of_the_stop() -> None:
    ttd = asyncio.run(_time_to_detect(DEADLINE_S, give_up_s=BUDGET_S + 3.0))
    print(f"time to detect a stack that stopped answering: {ttd} s")
    assert ttd is not None and ttd <= BUDGET_S, f"time to detect {ttd} s > {BUDGET_S} s"


def test_without_deadlines_the_same_stop_takes_longer_than_5_s() -> None:
    # the counter-test: what the deadline buys. Only the client's 10-s timeout would count
    # the hung requests, so nothing is decided within the budget.
    assert asyncio.run(_time_to_detect(None, give_up_s=BUDGET_S + 0.5)) is None
