"""Locust side of the benchmark: FastHttpUser doing the same request as bench/run_generator.py.

``BENCH_USER_RATE`` (requests/s per user) paces each user with ``constant_throughput``; unset
or 0, users loop with no wait (Locust's maximum throughput)::

    locust --headless -u 64 -r 640 --run-time 14s -f bench/locust_bench.py \\
        --host http://127.0.0.1:18080 --only-summary
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from locust import FastHttpUser, constant, constant_throughput, task

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rollback_drill.traffic import LOGIN_PATH, MODELS_PATH

_RATE = float(os.environ.get("BENCH_USER_RATE", "0") or 0)


class BenchUser(FastHttpUser):
    wait_time = constant_throughput(_RATE) if _RATE > 0 else constant(0)

    def on_start(self) -> None:
        self.client.post(LOGIN_PATH, json={"username": "bench", "password": "bench"})

    @task
    def models(self) -> None:
        self.client.get(MODELS_PATH)
