"""Redis INFO collector against a labelled ``rollback-drill/redis:bookworm`` container."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from rollback_drill.errors import TargetError
from rollback_drill.signals._docker import daemon_problem
from rollback_drill.signals.redis_info import RedisInfoCollector
from rollback_drill.wait import wait_for

IMAGE = "rollback-drill/redis:bookworm"
LABELS = {"io.rollback-drill": "1", "io.rollback-drill.owner": "tests-signals"}


def test_only_loopback_is_reached() -> None:
    with pytest.raises(TargetError, match="loopback"):
        RedisInfoCollector(6379, host="10.0.0.7")


def test_an_unreachable_redis_is_recorded_not_raised() -> None:
    # port 9 (discard) is closed on loopback: every INFO fails fast
    with RedisInfoCollector(9, interval=0.05, timeout=0.5) as info:
        wait_for(
            lambda: info.series.count("scrape_failures"),
            lambda n: n >= 2,
            timeout_s=20,
            what="failed INFOs",
            interval_s=0.1,
        )
        latest = info.series.get("up").latest
        assert latest is not None
        assert latest.value == 0.0
        assert "ConnectionError" in info.errors.values()[0]
        assert info.hit_rate() is None


@pytest.fixture
def redis_port() -> Iterator[tuple[Any, int]]:
    import docker

    problem = daemon_problem()
    if problem:
        pytest.skip(problem)
    client = docker.from_env(timeout=30)
    container = None
    try:
        try:
            client.images.get(IMAGE)
        except docker.errors.ImageNotFound:
            pytest.skip(f"image {IMAGE} is not built yet")
        container = client.containers.run(
            IMAGE,
            detach=True,
            name=f"rdsig-redis-{uuid.uuid4().hex[:8]}",
            labels=LABELS,
            ports={"6379/tcp": ("127.0.0.1", None)},
        )

        def published() -> int | None:
            container.reload()
            bound = (container.attrs["NetworkSettings"]["Ports"] or {}).get("6379/tcp")
            return int(bound[0]["HostPort"]) if bound else None

        port = wait_for(
            published,
            lambda p: p is not None,
            timeout_s=20,
            what="the published port",
            interval_s=0.1,
        )
        assert port is not None
        with redis.Redis(port=port, socket_timeout=1) as r:

            def pong() -> bool:
                try:
                    return bool(r.ping())
                except redis.ConnectionError:
                    return False

            wait_for(
                pong, bool, timeout_s=20, what=f"redis PONG on 127.0.0.1:{port}", interval_s=0.1
            )
        yield container, port
    finally:
        if container is not None:
            container.remove(force=True)
        client.close()


@pytest.mark.docker
def test_info_series_and_hit_rate(redis_port: tuple[Any, int]) -> None:
    container, port = redis_port
    with (
        RedisInfoCollector(port, interval=0.05) as info,
        redis.Redis(port=port, socket_timeout=2) as r,
    ):
        wait_for(
            lambda: len(info.series.select("keyspace_hits")),
            bool,
            timeout_s=20,
            what="a first INFO",
            interval_s=0.1,
        )
        t0 = info.clock.now()
        r.set("k", "v")
        for _ in range(9):
            assert r.get("k") == b"v"
        assert r.get("missing") is None
        hits = info.series.get("keyspace_hits")
        wait_for(
            lambda: hits.increase(t0, None),
            lambda v: v == 9,
            timeout_s=20,
            what="9 hits in INFO",
            interval_s=0.1,
        )
        t1 = info.clock.now()
        misses = info.series.get("keyspace_misses")
        wait_for(
            lambda: misses.increase(t0, None),
            lambda v: v == 1,
            timeout_s=20,
            what="1 miss in INFO",
            interval_s=0.1,
        )
        t1 = info.clock.now()
        assert info.hit_rate(t0, t1) == pytest.approx(0.9)
        clients = info.series.get("connected_clients").latest
        assert clients is not None
        assert clients.value >= 2  # the collector and this test
        used = info.series.get("used_memory").latest
        assert used is not None
        assert used.value > 100_000
        assert info.series.get("rejected_connections").latest is not None

        # CONFIG RESETSTAT zeroes the counters: a reset, not a negative increase. (A reset is
        # seen only if a sample catches the counter lower than before: wait for that one.)
        t2 = info.clock.now()
        r.config_resetstat()
        wait_for(
            lambda: misses.resets(t2, None),
            lambda n: n == 1,
            timeout_s=20,
            what="the counter reset",
            interval_s=0.1,
        )
        for _ in range(3):
            r.get("missing")
        wait_for(
            lambda: misses.increase(t2, None),
            lambda v: v == 3,
            timeout_s=20,
            what="3 misses since the reset",
            interval_s=0.1,
        )
        assert info.hit_rate(t2, None) == 0.0

        # Redis gone: recorded as up=0 and errors, never raised
        container.stop(timeout=2)
        wait_for(
            lambda: info.series.count("scrape_failures"),
            bool,
            timeout_s=20,
            what="a failed INFO",
            interval_s=0.1,
        )
        latest_up = info.series.get("up").latest
        assert latest_up is not None
        assert latest_up.value == 0.0
        assert info.errors.values()
