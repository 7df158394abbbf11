"""Sub-millisecond wake-ups on an asyncio (or uvloop) event loop: a Linux ``timerfd``.

Both event loops time their timers in whole milliseconds (asyncio rounds the ``epoll_wait``
timeout up to the next millisecond; libuv keeps its clock in milliseconds), so the load
generator sent a request scheduled for ``t`` at ``t + 0.3..1.5 ms`` (P50..P95 on uvloop at
200 req/s, `bench/README.md`), and that lag is in every latency it measures from the schedule:
+1.6 ms on a known 50 ms delay, most of the +/-2 % the engine is held to. A ``timerfd`` armed
at an absolute ``CLOCK_MONOTONIC`` time (the clock of ``time.perf_counter`` on Linux) becomes
readable at that time to within the kernel's timer slack (~50 us), and the loop's ``epoll``
wakes on it like on any socket: no spinning, one ``timerfd_settime`` when the earliest deadline
changes and one ``read`` per expiry.

Written by hand: ``os.timerfd_create`` arrives in Python 3.13 and this project runs on 3.11;
the PyPI binding ``linuxfd`` has had no release since 2020. Elsewhere (macOS, a clock that is
not ``CLOCK_MONOTONIC``) ``PreciseTimer.create`` returns ``None`` and callers keep the loop's
own millisecond timers, which is also what they say in their reports (``precise_timer``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import heapq
import itertools
import math
import os
import sys
import time
from typing import Final

_CLOCK_MONOTONIC: Final = 1
_TFD_NONBLOCK: Final = os.O_NONBLOCK
_TFD_CLOEXEC: Final = 0o2000000
_TFD_TIMER_ABSTIME: Final = 1


class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


class _Itimerspec(ctypes.Structure):
    _fields_ = (("it_interval", _Timespec), ("it_value", _Timespec))


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    if time.get_clock_info("perf_counter").implementation != "clock_gettime(CLOCK_MONOTONIC)":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.timerfd_create.argtypes = (ctypes.c_int, ctypes.c_int)
        libc.timerfd_settime.argtypes = (
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(_Itimerspec),
            ctypes.c_void_p,
        )
    except (OSError, AttributeError):
        return None
    return libc


_LIBC: Final = _libc()


class PreciseTimer:
    """Futures resolved at ``time.perf_counter()`` deadlines, on one loop, via one timerfd."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        self._loop = loop
        self._fd = fd
        self._heap: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._armed = math.inf
        self._spec = _Itimerspec()
        loop.add_reader(fd, self._fire)

    @classmethod
    def create(cls, loop: asyncio.AbstractEventLoop | None = None) -> PreciseTimer | None:
        """A timer on ``loop`` (the running one by default), or ``None`` where the platform
        has no timerfd on the clock of ``time.perf_counter``."""
        if _LIBC is None:
            return None
        fd = _LIBC.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if fd < 0:
            return None
        try:
            return cls(loop or asyncio.get_running_loop(), fd)
        except Exception:
            os.close(fd)
            raise

    def wake_at(self, due: float) -> asyncio.Future[None]:
        """A future resolved (to ``None``) once ``time.perf_counter()`` has reached ``due``.
        Resolving or cancelling it earlier is the caller's business; the timer skips it."""
        future: asyncio.Future[None] = self._loop.create_future()
        heapq.heappush(self._heap, (due, next(self._seq), future))
        if due < self._armed:
            self._arm(due)
        return future

    def close(self) -> None:
        if self._fd < 0:
            return
        self._loop.remove_reader(self._fd)
        os.close(self._fd)
        self._fd = -1
        for _, _, future in self._heap:
            if not future.done():
                future.set_result(None)
        self._heap.clear()

    def _arm(self, due: float) -> None:
        assert _LIBC is not None
        self._armed = due
        value = self._spec.it_value
        if math.isinf(due):
            value.tv_sec = value.tv_nsec = 0  # disarm
        else:
            sec = math.floor(due)
            value.tv_sec = sec
            value.tv_nsec = max(1, min(999_999_999, int((due - sec) * 1e9)))
        if _LIBC.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None):
            err = ctypes.get_errno()
            raise OSError(err, f"timerfd_settime: {os.strerror(err)}")

    def _fire(self) -> None:
        with contextlib.suppress(BlockingIOError):  # re-armed since it became readable
            os.read(self._fd, 8)
        now = time.perf_counter()
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, future = heapq.heappop(heap)
            if not future.done():
                future.set_result(None)
        while heap and heap[0][2].done():  # woken or cancelled by their owners
            heapq.heappop(heap)
        self._arm(heap[0][0] if heap else math.inf)
