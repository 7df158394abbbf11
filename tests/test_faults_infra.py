"""Infrastructure faults against fakes of the Docker SDK: parameters, idempotence, what a
revert restores. The real thing runs in tests/test_faults_docker.py (marked ``docker``)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import docker.errors
import pytest

from rollback_drill.errors import FaultError
from rollback_drill.faults import (
    CpuQuota,
    MemoryLimit,
    PacketFault,
    PauseContainers,
    PauseCycle,
    RestartContainers,
    StopContainers,
    containers,
)
from rollback_drill.faults.network import rule_spec
from rollback_drill.journal import Journal


class FakeContainer:
    def __init__(self, name: str) -> None:
        self.name = self.id = name
        self.status = "running"
        self.attrs: dict[str, Any] = {
            "State": {"Paused": False, "Pid": 4242},
            "HostConfig": {
                "Memory": 402653184,
                "MemorySwap": 805306368,
                "CpuQuota": 0,
                "CpuPeriod": 0,
                "NanoCpus": 0,
            },
            "RestartCount": 0,
        }
        self.calls: list[tuple[str, Any]] = []
        self.gone = False

    def reload(self) -> None:
        if self.gone:
            raise docker.errors.NotFound("gone")

    def stop(self, timeout: int = 10) -> None:
        self.calls.append(("stop", timeout))
        self.status = "exited"

    def start(self) -> None:
        self.calls.append(("start", None))
        self.status = "running"

    def kill(self, signal: str = "SIGKILL") -> None:
        self.calls.append(("kill", signal))
        self.status = "exited"

    def restart(self, timeout: int = 10) -> None:
        self.calls.append(("restart", timeout))

    def pause(self) -> None:
        self.calls.append(("pause", None))
        self.attrs["State"]["Paused"] = True

    def unpause(self) -> None:
        self.calls.append(("unpause", None))
        self.attrs["State"]["Paused"] = False

    def update(self, **kw: Any) -> None:
        self.calls.append(("update", kw))
        hc = self.attrs["HostConfig"]
        if "cpu_quota" in kw:
            hc["CpuQuota"], hc["CpuPeriod"] = kw["cpu_quota"], kw.get("cpu_period", hc["CpuPeriod"])
        if "mem_limit" in kw:
            hc["Memory"], hc["MemorySwap"] = kw["mem_limit"], kw["memswap_limit"]


def fake_stack(*containers: FakeContainer) -> Any:
    return SimpleNamespace(
        containers=lambda service=None: list(containers),
        journal=Journal(),
        workspace=SimpleNamespace(run_id="unit"),
    )


def test_stop_is_reverted_by_a_start_once() -> None:
    c = FakeContainer("nginx-1")
    fault = StopContainers(fake_stack(c), "nginx", timeout_s=3)
    fault.apply()
    fault.apply()
    assert fault.observe().seen
    fault.revert()
    fault.revert()
    assert c.calls == [("stop", 3), ("start", None)] and c.status == "running"
    assert fault.name == "StopContainers:nginx" and fault.params == {
        "service": "nginx",
        "timeout_s": 3,
    }


def test_a_service_with_nothing_running_cannot_be_faulted() -> None:
    c = FakeContainer("asgi-1")
    c.status = "exited"
    with pytest.raises(FaultError, match="no running container of service backend-asgi"):
        StopContainers(fake_stack(c), "backend-asgi").apply()


def test_revert_tolerates_a_container_that_went_away() -> None:
    a, b = FakeContainer("a"), FakeContainer("b")
    fault = PauseContainers(fake_stack(a, b), "redis")
    fault.apply()
    a.gone = True
    fault.revert()
    assert ("unpause", None) not in a.calls and ("unpause", None) in b.calls


def test_restart_counts_and_needs_a_positive_number() -> None:
    with pytest.raises(ValueError, match="times must be >= 1"):
        RestartContainers(fake_stack(), "x", times=0)
    c = FakeContainer("asgi-1")
    fault = RestartContainers(fake_stack(c), "backend-asgi", times=3, timeout_s=1)
    fault.apply()
    assert fault.observe().seen and c.calls.count(("restart", 1)) == 3


def test_cpu_quota_is_set_and_the_previous_one_restored() -> None:
    with pytest.raises(ValueError, match="cpus must be > 0"):
        CpuQuota(fake_stack(), "x", cpus=0)
    c = FakeContainer("wsgi-1")
    fault = CpuQuota(fake_stack(c), "backend-wsgi", cpus=0.25)
    fault.apply()
    assert c.calls[-1] == ("update", {"cpu_period": 100_000, "cpu_quota": 25_000})
    assert fault.observe().seen
    fault.revert()
    assert c.calls[-1] == ("update", {"cpu_quota": -1, "cpu_period": 100_000})


def test_cpu_quota_is_retuned_in_place_and_the_first_one_restored() -> None:
    c = FakeContainer("wsgi-1")
    fault = CpuQuota(fake_stack(c), "backend-wsgi", cpus=0.5)
    with pytest.raises(FaultError, match="before apply"):
        fault.set_cpus(0.4)
    fault.apply()
    fault.set_cpus(0.4)
    assert c.calls[-1] == ("update", {"cpu_period": 100_000, "cpu_quota": 40_000})
    assert fault.observe().seen and fault.params["cpus"] == 0.4
    with pytest.raises(ValueError, match="cpus must be > 0"):
        fault.set_cpus(0)
    fault.revert()
    assert c.calls[-1] == ("update", {"cpu_quota": -1, "cpu_period": 100_000})


def test_cpu_quota_refuses_a_container_with_a_cpus_limit() -> None:
    c = FakeContainer("wsgi-1")
    c.attrs["HostConfig"]["NanoCpus"] = 10**9
    with pytest.raises(FaultError, match="--cpus"):
        CpuQuota(fake_stack(c), "backend-wsgi", cpus=0.5).apply()


def test_memory_limit_parameters() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        MemoryLimit(fake_stack(), "x")
    with pytest.raises(ValueError, match="exactly one"):
        MemoryLimit(fake_stack(), "x", limit_bytes=10**8, target_ratio=0.9)
    with pytest.raises(ValueError, match="target_ratio"):
        MemoryLimit(fake_stack(), "x", target_ratio=1.0)
    with pytest.raises(ValueError, match="6 MiB"):
        MemoryLimit(fake_stack(), "x", limit_bytes=1024)


def test_memory_limit_restores_limit_and_swap() -> None:
    c = FakeContainer("asgi-1")
    fault = MemoryLimit(fake_stack(c), "backend-asgi", limit_bytes=200 * 2**20)
    fault.apply()
    assert c.calls[-1] == ("update", {"mem_limit": 200 * 2**20, "memswap_limit": 200 * 2**20})
    fault.revert()
    assert c.calls[-1] == ("update", {"mem_limit": 402653184, "memswap_limit": 805306368})


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_memory_limit_without_oom_kill_holds_and_restores_the_cgroup(
    version: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if version == "v1":
        held = tmp_path / "memory.oom_control"
        held.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
    else:
        held = tmp_path / "memory.high"
        held.write_text("max\n")
    monkeypatch.setattr(containers, "find_cgroup", lambda cid, pid, ctl, files: tmp_path)
    monkeypatch.setattr(containers, "container_memory", lambda c: (100 * 2**20, 0))
    c = FakeContainer("asgi-1")
    fault = MemoryLimit(fake_stack(c), "backend-asgi", limit_bytes=200 * 2**20, oom_kill=False)
    fault.apply()
    assert held.read_text() == ("1" if version == "v1" else str(150 * 2**20))
    assert c.calls[-1] == ("update", {"mem_limit": 200 * 2**20, "memswap_limit": 200 * 2**20})
    fault.revert()
    assert held.read_text() == ("0" if version == "v1" else "max")
    assert c.calls[-1] == ("update", {"mem_limit": 402653184, "memswap_limit": 805306368})


@pytest.mark.parametrize(
    ("kw", "chain", "tail"),
    [
        (
            {"port": 8000, "direction": "in", "action": "reset"},
            "INPUT",
            ["-j", "REJECT", "--reject-with", "tcp-reset"],
        ),
        ({"port": 5432, "direction": "out", "action": "drop"}, "OUTPUT", ["-j", "DROP"]),
    ],
)
def test_packet_rules(kw: Any, chain: str, tail: list[str]) -> None:
    got_chain, args = rule_spec(comment="rbd-x", **kw)
    assert got_chain == chain and args[-len(tail) :] == tail
    assert args[:4] == ["-p", "tcp", "--dport", str(kw["port"])]
    assert args[args.index("--comment") : args.index("--comment") + 2] == ["--comment", "rbd-x"]


def test_packet_rules_every_nth_and_established_only() -> None:
    _, args = rule_spec(
        port=6379, direction="out", action="reset", every=4, established_only=True, comment="c"
    )
    text = " ".join(args)
    assert "--ctstate ESTABLISHED" in text
    assert "-m statistic --mode nth --every 4 --packet 0" in text
    with pytest.raises(ValueError, match="every"):
        rule_spec(port=1, direction="in", action="drop", every=0, comment="c")
    with pytest.raises(ValueError, match="port"):
        rule_spec(port=70000, direction="in", action="drop", comment="c")


def test_each_packet_fault_has_its_own_comment() -> None:
    stack = fake_stack(FakeContainer("a"))
    one = PacketFault(stack, "backend-asgi", port=8000)
    two = PacketFault(stack, "backend-asgi", port=8000)
    assert one.comment != two.comment and one.comment.startswith("rbd-fault-unit-")


def freezer_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, v2: bool = False) -> Path:
    """A stand-in cgroup directory the pause cycle writes into."""
    (tmp_path / ("cgroup.freeze" if v2 else "freezer.state")).write_text("0" if v2 else "THAWED")
    monkeypatch.setattr(containers, "find_cgroup", lambda cid, pid, ctl, files: tmp_path)
    return tmp_path


def wait_cycles(fault: PauseCycle, n: int) -> None:
    deadline = time.monotonic() + 5.0
    while len(fault._cycles) < n:
        assert time.monotonic() < deadline, "the pause cycle made no cycles"
        time.sleep(0.01)


def test_pause_cycle_freezes_in_turns_and_thaws_on_revert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="share must be between 0 and 1"):
        PauseCycle(fake_stack(), "x", pause_ms=10, share=1.0)
    with pytest.raises(ValueError, match="pause_ms must be > 0"):
        PauseCycle(fake_stack(), "x", pause_ms=0, share=0.2)
    state = freezer_dir(tmp_path, monkeypatch) / "freezer.state"
    fault = PauseCycle(fake_stack(FakeContainer("wsgi-1")), "web", pause_ms=20, share=0.25)
    assert fault.period_ms == 80
    with pytest.raises(FaultError, match="before apply"):
        fault.set_pause(30)
    fault.apply()
    wait_cycles(fault, 4)
    effect = fault.verify_effect(timeout_s=2)
    share = fault.frozen_share()
    assert share is not None and 0.2 <= share <= 0.6, share  # 20 of every 80 ms, plus the writes
    assert effect.expected == "frozen 20 ms of every 80 ms"
    fault.set_pause(40)
    assert fault.params["pause_ms"] == 40.0 and fault.period_ms == 160
    fault.revert()
    assert state.read_text() == "THAWED" and fault._thread is None
    tuned = [e for e in fault.journal.of_kind("fault") if e.data.get("phase") == "tuned"]
    assert tuned[0].data["pause_ms"] == 40.0


def test_pause_cycle_writes_cgroup_v2s_freeze_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    freeze = freezer_dir(tmp_path, monkeypatch, v2=True) / "cgroup.freeze"
    fault = PauseCycle(fake_stack(FakeContainer("wsgi-1")), "web", pause_ms=200, share=0.5)
    fault.apply()
    deadline = time.monotonic() + 2.0
    while freeze.read_text() != "1":  # frozen within the first pause
        assert time.monotonic() < deadline
        time.sleep(0.005)
    fault.revert()  # mid-pause: the revert thaws at once
    assert freeze.read_text() == "0"


def test_a_pause_cycle_that_loses_its_cgroup_stops_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = freezer_dir(tmp_path, monkeypatch) / "freezer.state"
    fault = PauseCycle(fake_stack(FakeContainer("wsgi-1")), "web", pause_ms=5, share=0.5)
    fault.apply()
    wait_cycles(fault, 1)
    tmp_path.rename(tmp_path.with_name(tmp_path.name + "-gone"))  # the container went away
    deadline = time.monotonic() + 2.0
    while fault.error is None:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert not fault.observe().seen and "stopped" in str(fault.observe().measured)
    with pytest.raises(FaultError, match="the pause cycle stopped"):
        fault.set_pause(10)
    fault.revert()  # tolerates the missing cgroup
    assert not fault.applied and not state.exists()


def test_a_pause_cycle_without_a_freezer_cgroup_is_a_fault_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(containers, "find_cgroup", lambda cid, pid, ctl, files: None)
    fault = PauseCycle(fake_stack(FakeContainer("wsgi-1")), "web", pause_ms=5, share=0.5)
    with pytest.raises(FaultError, match="no freezer cgroup visible for wsgi-1"):
        fault.apply()
    assert not fault.applied


class FlakyFreeze(FakeContainer):
    """A container whose first ``fails`` pauses meet runc's "unable to freeze"."""

    def __init__(self, name: str, fails: int, message: str = "unable to freeze: unknown") -> None:
        super().__init__(name)
        self.fails, self.message = fails, message

    def pause(self) -> None:
        if self.fails:
            self.fails -= 1
            raise docker.errors.APIError(f"OCI runtime pause failed: {self.message}")
        super().pause()


def test_pause_tries_again_when_runc_could_not_freeze_in_time() -> None:
    c = FlakyFreeze("wsgi-1", fails=2)
    fault = PauseContainers(fake_stack(c), "web")
    fault.apply()
    assert fault.observe().seen and c.calls == [("pause", None)]
    retries = [e for e in fault.journal.of_kind("fault") if e.data.get("phase") == "retry"]
    assert [e.data["attempt"] for e in retries] == [1, 2]


def test_pause_gives_up_after_its_tries_and_on_any_other_error() -> None:
    fault = PauseContainers(fake_stack(FlakyFreeze("wsgi-1", fails=3)), "web")
    with pytest.raises(FaultError, match="unable to freeze"):
        fault.apply()
    other = PauseContainers(fake_stack(FlakyFreeze("wsgi-1", fails=1, message="no such")), "web")
    with pytest.raises(FaultError, match="no such"):
        other.apply()
    assert not fault.applied and not other.applied


def test_memory_hold_needs_a_ratio_and_a_positive_interval() -> None:
    with pytest.raises(ValueError, match="hold_s"):
        MemoryLimit(fake_stack(), "x", limit_bytes=10**8, hold_s=0.5)
    with pytest.raises(ValueError, match="hold_s"):
        MemoryLimit(fake_stack(), "x", target_ratio=0.9, hold_s=0)


def test_memory_hold_follows_the_use_down_to_its_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    """The squeeze is lowered again when the ratio falls past the slack, to use / target, and
    never below HOLD_FLOOR of the first squeeze; a ratio within the slack is left alone."""
    c = FakeContainer("asgi-1")
    use = {"bytes": 96 * 2**20}

    def memory(container: Any) -> tuple[int, int]:
        return use["bytes"], int(container.attrs["HostConfig"]["Memory"])

    monkeypatch.setattr(containers, "container_memory", memory)
    fault = MemoryLimit(fake_stack(c), "backend-asgi", target_ratio=0.96)
    fault.apply()
    first = fault.set_to[c.id]
    assert first == int(96 * 2**20 / 0.96)
    use["bytes"] = int(first * (0.96 - MemoryLimit.HOLD_SLACK / 2))  # within the slack
    assert fault.hold_step() == [] and fault.set_to[c.id] == first
    use["bytes"] = int(first * 0.93)  # the kernel reclaimed: lowered to use / target
    (step,) = fault.hold_step()
    assert step[0] == "asgi-1" and step[1] == pytest.approx(0.93, abs=1e-3)
    assert fault.set_to[c.id] == int(use["bytes"] / 0.96) < first
    assert c.calls[-1] == ("update", {"mem_limit": step[2], "memswap_limit": step[2]})
    assert fault.observe().seen
    use["bytes"] = int(first * 0.5)  # no leak: held at the floor, the ratio shows the fall
    fault.hold_step()
    assert fault.set_to[c.id] == int(first * MemoryLimit.HOLD_FLOOR)
    assert fault.hold_step() == []
    assert not fault.observe().seen
    fault.revert()
    assert c.calls[-1] == ("update", {"mem_limit": 402653184, "memswap_limit": 805306368})


def test_memory_hold_runs_in_a_thread_and_stops_on_revert(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    c = FakeContainer("asgi-1")
    looks = threading.Event()

    def memory(container: Any) -> tuple[int, int]:
        looks.set()
        return 90 * 2**20, 100 * 2**20

    monkeypatch.setattr(containers, "container_memory", memory)
    fault = MemoryLimit(fake_stack(c), "backend-asgi", target_ratio=0.9, hold_s=0.01)
    fault.apply()
    looks.clear()
    assert looks.wait(5.0)  # the thread looked again
    thread = fault._thread
    assert thread is not None and thread.is_alive()
    fault.revert()
    assert not thread.is_alive() and fault.error is None
