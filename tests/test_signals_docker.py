"""Docker events (restarts) and Docker stats (memory) collectors.

The ``docker``-marked tests start small labelled containers from the locally built
``rollback-drill/debian:bookworm`` image, each carrying Compose's project/service labels of a
unique fake project, and remove them in the fixture's teardown even when a test fails. They
skip with one line when no Docker daemon answers. The rest are pure tests of the readers.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from rollback_drill.signals._docker import daemon_problem
from rollback_drill.signals.docker_events import DockerEventsCollector
from rollback_drill.signals.docker_stats import (
    DockerStatsCollector,
    MemoryReading,
    docker_usage,
    find_memory_cgroup,
    read_cgroup_memory,
    reading_from_api,
)
from rollback_drill.signals.series import Clock
from rollback_drill.wait import wait_for
from tests.slew import HOUR_S, SlewingTime

IMAGE = "rollback-drill/debian:bookworm"
OWNER = {"io.rollback-drill": "1", "io.rollback-drill.owner": "tests-signals"}
# pid 1 in a container ignores SIGTERM unless it traps it: stop/restart then take 1 s, not 10
IDLE = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]


# -- pure: the memory readers -------------------------------------------------------------


def test_docker_usage_matches_the_cli_formula() -> None:
    assert docker_usage(1000, {"total_inactive_file": 300, "inactive_file": 100}) == 700
    assert docker_usage(1000, {"inactive_file": 250}) == 750  # cgroup v2
    assert docker_usage(1000, {"total_inactive_file": 2000, "inactive_file": 100}) == 900
    assert docker_usage(1000, {}) == 1000


def write_files(d: Path, files: dict[str, str]) -> Path:
    d.mkdir(parents=True)
    for name, text in files.items():
        (d / name).write_text(text)
    return d


def test_read_cgroup_v1_and_v2(tmp_path: Path) -> None:
    v1 = write_files(
        tmp_path / "memory" / "docker" / "abc",
        {
            "memory.usage_in_bytes": "50000000\n",
            "memory.limit_in_bytes": "67108864\n",
            "memory.stat": "cache 9000000\ninactive_file 1\ntotal_inactive_file 8000000\n",
        },
    )
    assert read_cgroup_memory(v1, 10**12) == MemoryReading(42_000_000, 67_108_864)
    unlimited = write_files(
        tmp_path / "v1-unlimited",
        {
            "memory.usage_in_bytes": "100\n",
            "memory.limit_in_bytes": "9223372036854771712\n",
            "memory.stat": "total_inactive_file 0\n",
        },
    )
    assert read_cgroup_memory(unlimited, 4096).limit_bytes == 4096  # capped like the daemon
    v2 = write_files(
        tmp_path / "system.slice" / "docker-def.scope",
        {"memory.current": "3000\n", "memory.max": "max\n", "memory.stat": "inactive_file 1000\n"},
    )
    reading = read_cgroup_memory(v2, 8000)
    assert reading == MemoryReading(2000, 8000)
    assert reading.ratio == 0.25
    # the usual paths are found without a pid
    assert find_memory_cgroup("abc", 0, tmp_path) == v1
    assert find_memory_cgroup("def", 0, tmp_path) == v2
    assert find_memory_cgroup("nope", 0, tmp_path) is None


def test_reading_from_the_stats_api() -> None:
    ms = {"usage": 5000, "limit": 10000, "stats": {"total_inactive_file": 1000}}
    assert reading_from_api(ms) == MemoryReading(4000, 10000)
    assert reading_from_api({}) is None  # a container that is not running


def event(action: str, cid: str, service: str, nano: int, **attrs: str) -> dict[str, Any]:
    labels = {"com.docker.compose.service": service, "name": f"proj-{service}-1", **attrs}
    return {"Action": action, "Actor": {"ID": cid, "Attributes": labels}, "timeNano": nano}


def test_restart_rules_on_synthetic_events() -> None:
    clock = Clock(monotonic=lambda: 0.0, wall=lambda: 1000.0)
    events = DockerEventsCollector("proj", clock=clock)
    s = 1_000_000_000
    for e in [
        # crash loop: die (no kill) -> start, twice
        event("die", "a", "asgi", 1001 * s, exitCode="1"),
        event("start", "a", "asgi", 1002 * s),
        event("die", "a", "asgi", 1003 * s, exitCode="1"),
        event("start", "a", "asgi", 1004 * s),
        event("restart", "a", "asgi", 1004 * s + 1),  # never counted on its own
        # docker restart: kill, die, stop, start -> a restart, not a crash
        event("kill", "w", "wsgi", 1005 * s, signal="15"),
        event("die", "w", "wsgi", 1005 * s + 5, exitCode="143"),
        event("start", "w", "wsgi", 1006 * s),
        # OOM without a restart policy
        event("oom", "o", "asgi", 1007 * s),
        event("die", "o", "asgi", 1007 * s + 1, exitCode="137"),
        # a fresh container starting is not a restart
        event("start", "n", "asgi", 1008 * s),
        # replayed after a reconnect: ignored
        event("die", "o", "asgi", 1007 * s + 1, exitCode="137"),
        event("start", "a", "asgi", 1004 * s),
        # delivered late, stamped before the last event seen: still counted
        event("oom", "x", "wsgi", 1006 * s + 7),
    ]:
        events.handle(e)
    assert events.count("restarts", "asgi") == 2
    assert events.count("restarts", "wsgi") == 1
    assert events.count("crashes", "asgi") == 3
    assert events.count("crashes", "wsgi") == 0
    assert events.count("ooms", "asgi") == 1
    assert events.count("ooms", "wsgi") == 1
    assert events.count("dies") == 4
    # event times are mapped from the daemon's wall clock: 1002 s wall = t 2.0
    assert [x.t for x in events.series.select("restarts", service="asgi")[0]] == [2.0, 4.0]
    assert events.count("restarts", "asgi", 3.0, 10.0) == 1
    with pytest.raises(ValueError, match="unknown event series"):
        events.count("restart")


def test_a_restart_of_now_is_in_the_window_ending_now_after_an_hour_of_slew() -> None:
    """The daemon stamps events with the wall clock, 0.5 % fast against the monotonic one: an
    hour on, a crash and its restart that happened now are counted in the minute ending now
    (the mapping taken once at the start put them 18 s past it)."""
    time_ = SlewingTime()
    events = DockerEventsCollector("proj", clock=time_.clock())
    time_.advance(HOUR_S)
    nano = int(time_.wall() * 1e9) - 1_000_000  # a millisecond ago
    events.handle(event("die", "a", "asgi", nano - 1_000_000, exitCode="1"))
    events.handle(event("start", "a", "asgi", nano))
    now = events.clock.now()
    assert events.count("restarts", "asgi", now - 60, now) == 1
    assert events.count("crashes", "asgi", now - 60, now) == 1


# -- Docker ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docker_client() -> Iterator[Any]:
    import docker

    problem = daemon_problem()
    if problem:
        pytest.skip(problem)
    client = docker.from_env(timeout=30)
    try:
        try:
            client.images.get(IMAGE)
        except docker.errors.ImageNotFound:
            pytest.skip(f"image {IMAGE} is not built")
        yield client
    finally:
        client.close()


class Containers:
    """Starts labelled containers of one fake Compose project; removes them all on close."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.project = f"rdsig-{uuid.uuid4().hex[:8]}"
        self.created: list[Any] = []

    def run(self, service: str, command: list[str] | str, **kwargs: Any) -> Any:
        labels = {
            **OWNER,
            "com.docker.compose.project": self.project,
            "com.docker.compose.service": service,
        }
        container = self.client.containers.create(IMAGE, command, labels=labels, **kwargs)
        self.created.append(container)
        container.start()
        return container

    def remove_all(self) -> None:
        for container in self.created:
            try:
                container.remove(force=True)
            except Exception as exc:
                if "No such container" not in str(exc):
                    raise


@pytest.fixture
def containers(docker_client: Any) -> Iterator[Containers]:
    pool = Containers(docker_client)
    try:
        yield pool
    finally:
        pool.remove_all()


def state(container: Any) -> str:
    container.reload()
    return str(container.status)


@pytest.mark.docker
def test_restarts_crashes_and_ooms_per_service(docker_client: Any, containers: Containers) -> None:
    events = DockerEventsCollector(containers.project, client=docker_client)
    only_a = DockerEventsCollector(containers.project, ["crashloop"], client=docker_client)
    with events, only_a:
        t0 = events.clock.now()
        # a crash loop: 1 start + 3 restarts by the on-failure policy, 4 crashes
        loop = containers.run(
            "crashloop",
            ["sh", "-c", "exit 3"],
            restart_policy={"Name": "on-failure", "MaximumRetryCount": 3},
        )
        # an operator restart: a restart, not a crash
        idle = containers.run("restarted", IDLE)
        idle.restart(timeout=5)
        wait_for(
            lambda: (events.count("dies", "crashloop"), events.count("restarts", "restarted")),
            lambda v: v == (4, 1),
            timeout_s=20,
            what="4 dies of crashloop and 1 restart of restarted",
            interval_s=0.1,
        )

        # the OOM killer: a crash and an oom, no restart (no policy). Docker itself now and then
        # misses an OOM kill on this host's cgroup v1 (the kernel's log shows the kill, yet
        # State.OOMKilled stays false and no oom event is sent): the collector can only count
        # what Docker reports, so such a run is repeated once, and every die is still counted.
        attempts = 0
        for attempts in (1, 2):  # noqa: B007 (the count is asserted below)
            oom = containers.run("oom", ["tail", "/dev/zero"], mem_limit="16m", memswap_limit="16m")
            wait_for(
                partial(state, oom), lambda s: s == "exited", timeout_s=20, what="the OOM kill"
            )
            oom.reload()
            if oom.attrs["State"].get("OOMKilled"):
                break
        else:
            pytest.fail("Docker recorded no OOM kill in two runs (State.OOMKilled false)")
        wait_for(
            lambda: (events.count("ooms", "oom"), events.count("dies", "oom")),
            lambda v: v == (1, attempts),
            timeout_s=20,
            what=f"the oom event and {attempts} die(s) (ooms, dies)",
            interval_s=0.1,
        )
        wait_for(
            lambda: state(loop),
            lambda s: s == "exited",
            timeout_s=20,
            what="the crash loop to give up",
            interval_s=0.1,
        )
        t1 = events.clock.now()
        assert events.count("restarts", "crashloop", t0, t1) == 3
        assert events.count("crashes", "crashloop") == 4
        assert (
            events.series.get("dies", service="crashloop", container=loop.name).values()
            == [3.0] * 4
        )
        assert events.count("crashes", "restarted") == 0
        assert events.count("dies", "restarted") == 1
        assert events.count("crashes", "oom") == attempts
        assert events.count("restarts", "oom") == 0
        assert events.count("restarts") == 4  # every service
        # event times are the daemon's, mapped onto the monotonic clock
        for sample in events.series.select("restarts")[0]:
            assert t0 - 1 < sample.t < t1 + 1
        # the service filter
        assert only_a.count("restarts", "crashloop") == 3
        assert only_a.count("restarts", "restarted") == 0
        assert only_a.series.select("dies", service="oom") == []
        assert events.errors.values() == []
    assert not events.running


@pytest.mark.docker
def test_a_container_found_exited_counts_a_restart_when_started(
    docker_client: Any, containers: Containers
) -> None:
    c = containers.run("web", ["sh", "-c", "exit 0"])
    wait_for(
        lambda: state(c),
        lambda s: s == "exited",
        timeout_s=20,
        what="the container to exit",
        interval_s=0.1,
    )
    with DockerEventsCollector(containers.project, client=docker_client) as events:
        c.start()
        wait_for(
            lambda: events.count("restarts", "web"),
            lambda n: n == 1,
            timeout_s=20,
            what="the restart",
            interval_s=0.1,
        )


@pytest.mark.docker
def test_events_collector_stops_promptly_and_owns_its_client() -> None:
    problem = daemon_problem()
    if problem:
        pytest.skip(problem)
    events = DockerEventsCollector(f"rdsig-{uuid.uuid4().hex[:8]}").start()
    began = time.monotonic()
    events.stop(timeout=5)
    events.stop()
    assert time.monotonic() - began < 2
    assert events.errors.values() == []


def cli_memory(container_id: str) -> tuple[float, float]:
    """``docker stats --no-stream``: (usage bytes, percent), as the CLI prints them."""
    out = subprocess.run(
        ["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}|{{.MemPerc}}", container_id],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    m = re.fullmatch(r"([\d.]+)([KMG]?i?B) / [\d.]+[KMG]?i?B\|([\d.]+)%", out)
    if m is None:  # e.g. "-- / --" before the daemon has a first sample
        raise ValueError(f"docker stats printed {out!r}")
    unit = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}[m.group(2)]
    return float(m.group(1)) * unit, float(m.group(3))


def latest(collector: DockerStatsCollector, name: str, **labels: str) -> float | None:
    found = collector.series.select(name, **labels)
    sample = found[0].latest if found else None
    return None if sample is None else sample.value


@pytest.mark.docker
def test_memory_ratio_rises_and_matches_docker_stats(
    docker_client: Any, containers: Containers
) -> None:
    if shutil.which("docker") is None:
        pytest.skip("the docker CLI is not installed (needed for the comparison)")
    app = containers.run("app", IDLE, mem_limit="64m", shm_size="64m")
    cgroup = DockerStatsCollector(containers.project, client=docker_client, interval=0.1)
    api = DockerStatsCollector(containers.project, client=docker_client, source="api")
    with cgroup, api:
        before = wait_for(
            lambda: latest(cgroup, "memory_ratio", container=app.name),
            lambda v: v is not None,
            timeout_s=20,
            what="a first memory sample",
            interval_s=0.1,
        )
        assert before is not None
        assert before < 0.1
        assert latest(cgroup, "memory_limit_bytes", container=app.name) == 64 * 1024**2
        # 40 MiB of tmpfs pages: shmem, charged to the container and not reclaimable
        code, out = app.exec_run(["dd", "if=/dev/zero", "of=/dev/shm/fill", "bs=1M", "count=40"])
        assert code == 0, out
        ratio = wait_for(
            lambda: latest(cgroup, "memory_ratio", container=app.name),
            lambda v: v is not None and v > 0.6,
            timeout_s=20,
            what="the ratio to rise past 0.6",
            interval_s=0.1,
        )
        assert ratio is not None
        usage = latest(cgroup, "memory_usage_bytes", container=app.name)
        cli_usage, cli_percent = wait_for(
            lambda: cli_memory(app.id),
            lambda v: v[0] > 0,
            timeout_s=60,
            what="docker stats --no-stream to print a memory usage",
            interval_s=0.5,
        )
        after = latest(cgroup, "memory_usage_bytes", container=app.name)
        assert usage is not None
        assert after is not None
        # the CLI samples somewhere between our two readings (it takes ~1-2 s, and the pages
        # dd wrote may still be charged meanwhile: a cold CI run read 40.6 MB before it, 42.8 MB
        # after, the CLI 42.8 MB): within 3 % of that span
        low, high = min(usage, after), max(usage, after)
        assert low * 0.97 <= cli_usage <= high * 1.03, (usage, after, cli_usage)
        assert abs(ratio * 100 - cli_percent) < 2.0, (ratio, cli_percent)
        # the API fallback sees the same (its stream samples once a second)
        api_usage = wait_for(
            lambda: latest(api, "memory_usage_bytes", container=app.name),
            lambda v: v is not None and abs(v - cli_usage) / cli_usage < 0.03,
            timeout_s=20,
            what="the API reader to agree",
            interval_s=0.1,
        )
        assert api_usage is not None
        assert latest(cgroup, "memory_ratio_max", service="app") == pytest.approx(
            latest(cgroup, "memory_ratio", container=app.name), abs=0.01
        )
        assert cgroup.errors.values() == []
        assert api.errors.values() == []
        assert cgroup.cpu_seconds() > 0


@pytest.mark.docker
def test_containers_appearing_and_disappearing(docker_client: Any, containers: Containers) -> None:
    containers.run("web", IDLE, mem_limit="32m")
    with DockerStatsCollector(
        containers.project, ["web"], client=docker_client, interval=0.1
    ) as stats:
        wait_for(
            lambda: latest(stats, "containers_running", service="web"),
            lambda n: n == 1,
            timeout_s=20,
            what="one running container",
            interval_s=0.1,
        )
        second = containers.run("web", IDLE, mem_limit="32m")
        containers.run("other-service", IDLE)
        wait_for(
            lambda: latest(stats, "containers_running", service="web"),
            lambda n: n == 2,
            timeout_s=20,
            what="the scaled-up second container",
            interval_s=0.1,
        )
        wait_for(
            lambda: latest(stats, "memory_ratio", container=second.name),
            lambda v: v is not None,
            timeout_s=20,
            what="series for the second container",
            interval_s=0.1,
        )
        second.stop(timeout=5)
        wait_for(
            lambda: latest(stats, "containers_running", service="web"),
            lambda n: n == 1,
            timeout_s=20,
            what="the second container gone",
            interval_s=0.1,
        )
        assert stats.series.select("memory_ratio", service="other-service") == []
        # the stopped container's series stop growing but keep their history
        n = len(stats.series.get("memory_ratio", service="web", container=second.name))
        ticks = stats.series.get("containers_running", service="web")
        k = len(ticks)
        wait_for(
            lambda: len(ticks),
            lambda m: m >= k + 3,
            timeout_s=20,
            what="three more ticks",
            interval_s=0.1,
        )
        assert len(stats.series.get("memory_ratio", service="web", container=second.name)) == n
        # a container stopping between the listing and the read is not an error
        assert stats.errors.values() == []
