"""The timerfd wake-ups of the load generator (Linux; elsewhere ``create`` is ``None``)."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from rollback_drill.timer import PreciseTimer

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="timerfd is Linux-only"
)


def test_wakes_in_deadline_order_never_early() -> None:
    async def main() -> list[tuple[int, float]]:
        timer = PreciseTimer.create()
        assert timer is not None
        woke: list[tuple[int, float]] = []
        start = time.perf_counter()
        dues = [start + d for d in (0.030, 0.010, 0.020, 0.010, 0.0)]

        async def sleeper(n: int, due: float) -> None:
            await timer.wake_at(due)
            woke.append((n, time.perf_counter() - due))

        try:
            await asyncio.gather(*(sleeper(n, due) for n, due in enumerate(dues)))
        finally:
            timer.close()
        return woke

    woke = asyncio.run(main())
    assert [n for n, _ in woke] == [4, 1, 3, 2, 0]
    assert all(late >= 0 for _, late in woke)  # never before its deadline


def test_a_woken_or_cancelled_future_is_skipped_and_close_releases_the_rest() -> None:
    async def main() -> tuple[bool, bool, bool]:
        timer = PreciseTimer.create()
        assert timer is not None
        early = timer.wake_at(time.perf_counter() + 0.005)
        early.set_result(None)  # woken by its owner (the generator's stop)
        cancelled = timer.wake_at(time.perf_counter() + 0.005)
        cancelled.cancel()
        later = timer.wake_at(time.perf_counter() + 0.010)
        await asyncio.wait_for(later, 1.0)
        pending = timer.wake_at(time.perf_counter() + 3600)
        timer.close()
        timer.close()  # twice is harmless
        return later.done(), pending.done(), cancelled.cancelled()

    assert asyncio.run(main()) == (True, True, True)


def test_a_deadline_in_the_past_fires_at_once() -> None:
    async def main() -> float:
        timer = PreciseTimer.create()
        assert timer is not None
        started = time.perf_counter()
        try:
            await asyncio.wait_for(timer.wake_at(started - 1.0), 1.0)
        finally:
            timer.close()
        return time.perf_counter() - started

    assert asyncio.run(main()) < 0.5
