"""Run the LoadGenerator alone against a loopback URL and print a JSON summary (one line).

The benchmark starts this as its own process, so that the generator's CPU time can be measured
from outside exactly like Locust's::

    python bench/run_generator.py --url http://127.0.0.1:18080 --rate 3000 --duration 12

Traffic: the ``crud`` category's ``GET /api/models/`` only (the one request every target of
the benchmark can answer), after the virtual users' logins.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rollback_drill.load import LoadConfig, LoadGenerator
from rollback_drill.traffic import Category, Credentials, CrudOp


async def _main(args: argparse.Namespace) -> dict[str, object]:
    config = LoadConfig(
        args.url,
        rate=args.rate,
        user=Credentials("bench", "bench"),
        weights={Category.CRUD: 1},
        crud_weights={CrudOp.MODELS_LIST: 1},
        max_concurrency=args.concurrency,
        timeout_s=args.timeout,
        precise_timer=not args.loop_timers,
        spin_s=args.spin_ms / 1000,
    )
    gen = LoadGenerator(config)
    await gen.start(duration_s=args.duration)
    first = time.time()
    await gen.wait(args.duration + args.timeout + 1)
    stats = await gen.stop()
    # the steady part only: skip the first and the last second
    window = gen.store.window(None, first + 1, first + args.duration - 1)
    return {
        "rate": args.rate,
        "completed": stats.completed,
        "unsent": stats.unsent,
        "max_queued_s": stats.max_queued_s,
        "elapsed_s": stats.elapsed_s,
        "count": window.count,
        "outcomes": {str(k): v for k, v in window.outcomes.items()},
        "p50_s": window.p50_s,
        "p95_s": window.p95_s,
        "p99_s": window.p99_s,
        "max_s": window.max_s,
        "precise_timer": gen.precise_timer,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="run the load generator, print JSON")
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--duration", type=float, default=12.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    parser.add_argument(
        "--spin-ms", type=float, default=0.0, help="yield-spin this long before each slot"
    )
    parser.add_argument(
        "--loop-timers", action="store_true", help="the event loop's ms timers, not a timerfd"
    )
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        result = uvloop.run(_main(args))
    else:
        result = asyncio.run(_main(args))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
