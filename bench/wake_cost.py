"""CPU price of one sleep-and-wake of an event-loop process at a fixed rate, doing no work.

    .venv/bin/python bench/wake_cost.py [--rate 3000] [--seconds 6] [--reps 2]

An open-model generator at a fixed rate sleeps until each slot and again until each answer:
below saturation a request costs at least those wake-ups, whatever the client library. This
measures that floor on the machine at hand: a uvloop process waits ``rate`` times a second for
a deadline, on the generator's ``timerfd`` (``rollback_drill.timer``) and on the loop's own
millisecond timers (which round several slots into one wake-up), and reports CPU-seconds
(user + system, ``resource.getrusage``) and voluntary context switches per deadline. No
network, no child process; it binds nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvloop

from rollback_drill.timer import PreciseTimer


def _usage() -> tuple[float, int]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime, ru.ru_nvcsw


async def _deadlines(kind: str, rate: float, seconds: float) -> dict[str, float | str]:
    loop = asyncio.get_running_loop()
    timer = PreciseTimer.create() if kind == "timerfd" else None
    if kind == "timerfd" and timer is None:
        raise SystemExit("wake_cost: no timerfd on this platform")
    n = int(rate * seconds)
    t0 = time.perf_counter() + 0.1
    cpu0, switches0 = _usage()
    late: list[float] = []
    for i in range(n):
        due = t0 + i / rate
        if timer is not None:
            await timer.wake_at(due)
        else:
            future = loop.create_future()
            delay = max(0.0, due - time.perf_counter())
            loop.call_at(loop.time() + delay, future.set_result, None)
            await future
        late.append(time.perf_counter() - due)
    cpu1, switches1 = _usage()
    if timer is not None:
        timer.close()
    late.sort()
    return {
        "timer": kind,
        "deadlines": n,
        "cpu_us_per_deadline": (cpu1 - cpu0) / n * 1e6,
        "cores": (cpu1 - cpu0) / seconds,
        "sleeps_per_deadline": (switches1 - switches0) / n,
        "late_p50_us": late[n // 2] * 1e6,
        "late_p95_us": late[int(n * 0.95)] * 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=3000.0)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.seconds <= 0 or args.reps < 1:
        parser.error("--rate and --seconds must be > 0, --reps >= 1")
    rows = []
    for _ in range(args.reps):
        for kind in ("timerfd", "loop"):  # side by side, alternating
            row = uvloop.run(_deadlines(kind, args.rate, args.seconds))
            rows.append(row)
            print(
                f"{row['timer']:8} {row['deadlines']} deadlines at {args.rate:g}/s: "
                f"{row['cpu_us_per_deadline']:.1f} us CPU each ({row['cores']:.3f} cores), "
                f"{row['sleeps_per_deadline']:.2f} sleeps each, late P50 "
                f"{row['late_p50_us']:.0f} us / P95 {row['late_p95_us']:.0f} us",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
