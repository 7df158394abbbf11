"""Commit latency of PostgreSQL with fsync on and off, side by side on this machine's disk.

    .venv/bin/python bench/commit_stalls.py [--seconds 120] [--rate 20] [--json PATH]

Why the reference stack runs PostgreSQL with ``fsync=off`` (compose/docker-compose.yml): two
containers of the reference image, one with ``fsync=on`` and one with ``fsync=off``, each take
``rate`` single-row INSERT transactions a second (autocommit, one connection each, a fixed
schedule per server, both in the same seconds) for ``seconds``. It reports each server's commit
latency quantiles and how many commits took over 50, 100 and 500 ms: with fsync on, every
commit waits for an ``fdatasync`` of the WAL, and on a VM's shared disk those stall now and
then; with it off, the commit still ``write()``s the WAL before it returns.

Both containers carry the suite's labels (``rollback-drill cleanup`` finds them), publish only
on 127.0.0.1, and whatever carries the bench's run label is removed at the end, volumes
included, also after an error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import docker
import psycopg
from docker.models.containers import Container

from rollback_drill.errors import EnvironmentProblem
from rollback_drill.stack import LABEL, RUN_LABEL, docker_client, sweep_run
from rollback_drill.wait import wait_for

IMAGE = "rollback-drill/postgres:bookworm"
THRESHOLDS_MS = (50, 100, 500)


def _start(client: docker.DockerClient, run: str, fsync: str, password: str) -> Container:
    return client.containers.run(
        IMAGE,
        command=["-c", f"fsync={fsync}"],
        detach=True,
        name=f"rbd-{run}-pg-fsync-{fsync}",
        labels={LABEL: "1", RUN_LABEL: run},
        environment={
            "POSTGRES_USER": "bench",
            "POSTGRES_PASSWORD": password,
            "POSTGRES_DB": "bench",
        },
        ports={"5432/tcp": ("127.0.0.1", None)},
    )


def _dsn(container: Container, password: str) -> str:
    container.reload()
    port = container.ports["5432/tcp"][0]["HostPort"]
    return f"host=127.0.0.1 port={port} user=bench password={password} dbname=bench"


def _connect(dsn: str) -> psycopg.Connection:
    def attempt() -> psycopg.Connection | None:
        try:
            return psycopg.connect(dsn, autocommit=True, connect_timeout=2)
        except psycopg.OperationalError:
            return None

    conn = wait_for(
        attempt,
        lambda c: c is not None,
        timeout_s=90,
        what=f"PostgreSQL at {dsn.split(' user')[0]}",
        interval_s=0.5,
    )
    assert conn is not None
    return conn


def _commits(
    conn: psycopg.Connection, start: float, rate: float, seconds: float, out: list[float]
) -> None:
    payload = "x" * 200
    n = int(rate * seconds)
    for i in range(n):
        due = start + i / rate
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)  # the fixed schedule, not a readiness wait
        t = time.perf_counter()
        conn.execute("INSERT INTO bench (payload) VALUES (%s)", (payload,))
        out.append((time.perf_counter() - t) * 1000)


def _summary(ms: list[float]) -> dict[str, float | int]:
    xs = sorted(ms)

    def q(p: float) -> float:
        return round(xs[min(len(xs) - 1, int(p * len(xs)))], 2)

    row: dict[str, float | int] = {
        "commits": len(xs),
        "p50_ms": q(0.5),
        "p99_ms": q(0.99),
        "p999_ms": q(0.999),
        "max_ms": round(xs[-1], 1),
    }
    for limit in THRESHOLDS_MS:
        row[f"over_{limit}ms"] = sum(x > limit for x in xs)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--rate", type=float, default=20.0, help="commits per second per server")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    try:
        client = docker_client()
    except EnvironmentProblem as exc:
        raise SystemExit(f"commit_stalls: {exc}") from None
    run = f"bench-commit-{secrets.token_hex(4)}"
    password = secrets.token_hex(12)
    containers: list[Container] = []
    try:
        conns = {}
        for fsync in ("on", "off"):
            containers.append(_start(client, run, fsync, password))
        for fsync, container in zip(("on", "off"), containers, strict=True):
            conns[fsync] = _connect(_dsn(container, password))
            conns[fsync].execute("CREATE TABLE bench (id bigserial PRIMARY KEY, payload text)")
        latencies: dict[str, list[float]] = {"on": [], "off": []}
        start = time.monotonic() + 0.5
        threads = [
            threading.Thread(
                target=_commits, args=(conns[f], start, args.rate, args.seconds, latencies[f])
            )
            for f in ("on", "off")
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        result = {f"fsync={f}": _summary(latencies[f]) for f in ("on", "off")}
        result["settings"] = {"seconds": args.seconds, "rate_per_server": args.rate}
        print(json.dumps(result, indent=1))
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))
        for conn in conns.values():
            conn.close()
    finally:
        sweep_run(client, run)  # also a container created but never started
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
