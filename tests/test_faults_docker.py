"""Every infrastructure fault (and one faulty release) against a real hybrid stack: applied,
its effect proven, reverted twice, and the stack healthy again afterwards."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from rollback_drill.client import AppClient
from rollback_drill.deploy import deploy_release
from rollback_drill.faults import (
    BaseFault,
    CpuQuota,
    CrashProcess,
    KillContainers,
    MemoryLimit,
    PacketFault,
    PauseContainers,
    PauseCycle,
    PostgresConnectionExhaustion,
    PostgresTerminate,
    RedisClientKill,
    RedisConnectionExhaustion,
    RestartContainers,
    StopContainers,
)
from rollback_drill.faults import faulty_releases as releases
from rollback_drill.faults.containers import Freezer
from rollback_drill.fixtures.stack import running_stack
from rollback_drill.journal import Journal
from rollback_drill.stack import RUN_LABEL, Stack
from rollback_drill.target import Target

# Nightly (``make engine-nightly``): a real stack per module and every injector applied and
# reverted twice take minutes, beyond the per-change CI's budget.
pytestmark = [pytest.mark.docker, pytest.mark.nightly]


@pytest.fixture(scope="module")
def hybrid_stack(
    docker_available: None, drill_target: Target, journal: Journal, run_id: str
) -> Iterator[Stack]:
    with running_stack(drill_target, journal, f"{run_id[:6]}{uuid.uuid4().hex[:4]}") as stack:
        deploy_release(stack, drill_target.releases.next)
        yield stack


@pytest.fixture
def traffic(hybrid_stack: Stack) -> Iterator[None]:
    """A trickle of logged-in requests (CRUD through WSGI, a stream through ASGI)."""
    stack, stop = hybrid_stack, threading.Event()

    def run() -> None:
        with AppClient(stack.base_url, timeout=3.0) as client:
            while not stop.is_set():
                try:
                    if client.get("/api/auth/me/").status != 200:
                        client.login(stack.workspace.user.username, stack.workspace.user.password)
                    client.get("/api/models/")
                    client.stream(n=1, interval_ms=1)
                except (httpx.HTTPError, OSError):
                    pass
                stop.wait(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=10)


def healthy_again(stack: Stack) -> None:
    s = stack.target.services
    stack.wait_healthy([s.nginx, s.wsgi, s.asgi, s.postgres, s.redis], 90)
    deadline = time.monotonic() + 30
    while not stack.http_ok(stack.target.paths.health):
        assert time.monotonic() < deadline, "health endpoint did not come back"
        time.sleep(0.5)


def exercise(stack: Stack, fault: BaseFault) -> None:
    try:
        fault.apply()
        fault.apply()
        assert fault.verify_effect(timeout_s=30).seen
    finally:
        fault.revert()
        fault.revert()
    assert not fault.applied
    healthy_again(stack)
    phases = [e.data["phase"] for e in stack.journal.of_kind("fault") if e.name == fault.name]
    assert phases[-4:] == ["start", "live", "verified", "end"]


S = Callable[[Stack], BaseFault]
CASES: list[tuple[str, S]] = [
    ("stop nginx", lambda s: StopContainers(s, s.target.services.nginx)),
    ("kill asgi", lambda s: KillContainers(s, s.target.services.asgi)),
    ("pause redis", lambda s: PauseContainers(s, s.target.services.redis)),
    ("restart asgi x2", lambda s: RestartContainers(s, s.target.services.asgi, times=2)),
    ("crash asgi x2", lambda s: CrashProcess(s, s.target.services.asgi, times=2)),
    ("cpu quota wsgi", lambda s: CpuQuota(s, s.target.services.wsgi, cpus=0.25)),
    (
        "pause cycle wsgi",
        lambda s: PauseCycle(s, s.target.services.wsgi, pause_ms=50, share=0.2),
    ),
    ("memory wsgi 90%", lambda s: MemoryLimit(s, s.target.services.wsgi, target_ratio=0.9)),
    (
        "memory asgi held 96.5%",
        lambda s: MemoryLimit(
            s, s.target.services.asgi, target_ratio=0.965, oom_kill=False, hold_s=0.5
        ),
    ),
    ("reset into asgi", lambda s: PacketFault(s, s.target.services.asgi, port=8000, every=2)),
    (
        "drop wsgi->pg",
        lambda s: PacketFault(
            s,
            s.target.services.wsgi,
            port=5432,
            direction="out",
            action="drop",
            established_only=True,
        ),
    ),
    ("redis client kill", RedisClientKill),
    ("redis exhaustion", RedisConnectionExhaustion),
    ("pg terminate", PostgresTerminate),
    ("pg exhaustion", PostgresConnectionExhaustion),
]


@pytest.mark.parametrize(("name", "make"), CASES, ids=[c[0] for c in CASES])
def test_infrastructure_fault(hybrid_stack: Stack, traffic: None, name: str, make: S) -> None:
    exercise(hybrid_stack, make(hybrid_stack))


def test_pause_cycle_freezes_and_thaws_in_the_kernel(hybrid_stack: Stack) -> None:
    """The kernel's own freezer state, sampled while the cycle runs: frozen in turns, and
    thawed after the revert (not the cycle's own bookkeeping)."""
    wsgi = hybrid_stack.target.services.wsgi
    fault = PauseCycle(hybrid_stack, wsgi, pause_ms=100, share=0.5)
    seen: set[bool] = set()
    try:
        fault.apply()
        freezers = [Freezer(c) for c in hybrid_stack.containers(wsgi)]
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and len(seen) < 2:
            seen.add(freezers[0].frozen())
            time.sleep(0.005)
    finally:
        fault.revert()
    assert seen == {True, False}
    assert not any(f.frozen() for f in freezers)
    assert hybrid_stack.http_ok(hybrid_stack.target.paths.health)


def test_memory_limit_is_restored_exactly(hybrid_stack: Stack) -> None:
    (c,) = hybrid_stack.containers(hybrid_stack.target.services.asgi)
    before = (c.attrs["HostConfig"]["Memory"], c.attrs["HostConfig"]["MemorySwap"])
    exercise(
        hybrid_stack,
        MemoryLimit(hybrid_stack, hybrid_stack.target.services.asgi, limit_bytes=300 * 2**20),
    )
    c.reload()
    assert (c.attrs["HostConfig"]["Memory"], c.attrs["HostConfig"]["MemorySwap"]) == before


def test_a_faulty_release_serves_its_exact_share_and_reverts(hybrid_stack: Stack) -> None:
    stack = hybrid_stack
    fault = releases.failing_share(stack, 0.25, kind="error")
    try:
        fault.apply()
        assert fault.verify_effect().seen
        with AppClient(stack.base_url) as client:
            client.login(stack.workspace.user.username, stack.workspace.user.password)
            statuses = [client.get("/api/models/").status for _ in range(40)]
        assert statuses.count(500) == 10, statuses
    finally:
        fault.revert()
        fault.revert()
    assert stack.current_release() == stack.target.releases.next
    healthy_again(stack)


def test_nothing_of_ours_is_left_but_the_stack(hybrid_stack: Stack) -> None:
    """Faults create no container: only the project's own are labelled with its run."""
    run = hybrid_stack.workspace.run_id
    ours = hybrid_stack.docker.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run}"})
    services = {c.labels.get("com.docker.compose.service") for c in ours}
    assert services <= set(hybrid_stack.target.services.model_dump().values()), services
    assert all(c.labels.get("com.docker.compose.project") == hybrid_stack.project for c in ours)
