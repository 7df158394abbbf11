"""Infrastructure faults on a Compose service's containers: no cooperation from the app.

Each works on any Compose project the suite can see (only this run's containers, through
``Stack.containers``), through the Docker API:

- :class:`StopContainers` / :class:`KillContainers` -- ``docker stop`` / ``docker kill``: the
  service is down until the revert starts it again (a manual stop or kill is not restarted by
  a restart policy);
- :class:`PauseContainers` -- frozen (cgroup freezer): connections hang instead of failing;
- :class:`PauseCycle` -- frozen for ``pause_ms`` of every period, again and again: a recurring
  stall (a noisy neighbour, a stop-the-world pause) that raises the P95 with no cliff;
- :class:`RestartContainers` -- ``docker restart``, ``times`` times (each awaited running);
- :class:`CrashProcess` -- SIGKILL to the container's main process from the host, ``times``
  times: to Docker that is a crash (no ``kill`` event), so the restart policy brings it back
  and the events collector counts a crash and a restart;
- :class:`CpuQuota` -- ``docker update --cpus``;
- :class:`MemoryLimit` -- ``docker update --memory`` (and swap), either to a size or so that
  the current use is ``target_ratio`` of the new limit.

Reverts restore what was there before (the containers' own previous settings), and tolerate
containers that went away meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

import docker.errors

from rollback_drill.errors import FaultError
from rollback_drill.faults.base import BaseFault, Effect
from rollback_drill.journal import Journal
from rollback_drill.signals.docker_stats import (
    find_cgroup,
    machine_memory,
    read_cgroup_memory,
)
from rollback_drill.stack import Stack
from rollback_drill.wait import wait_for

__all__ = [
    "CpuQuota",
    "CrashProcess",
    "KillContainers",
    "MemoryLimit",
    "PauseContainers",
    "PauseCycle",
    "RestartContainers",
    "StopContainers",
    "container_memory_ratio",
]

_GONE = (docker.errors.NotFound, docker.errors.APIError)


class ServiceFault(BaseFault):
    """A fault on the running containers of one Compose service of ``stack``."""

    family: ClassVar[Literal["infrastructure"]] = "infrastructure"

    def __init__(
        self,
        stack: Stack,
        service: str,
        *,
        journal: Journal | None = None,
        name: str | None = None,
        **params: Any,
    ) -> None:
        label = name or f"{type(self).__name__}:{service}"
        super().__init__(
            label, journal if journal is not None else stack.journal, {"service": service, **params}
        )
        self.stack = stack
        self.service = service
        self.targets: list[Any] = []  # the containers the fault was applied to

    def running(self) -> list[Any]:
        out = [c for c in self.stack.containers(self.service) if c.status == "running"]
        if not out:
            raise FaultError(f"{self.name}: no running container of service {self.service}")
        return out

    def _fresh(self, container: Any) -> Any | None:
        with contextlib.suppress(*_GONE):
            container.reload()
            return container
        return None


class StopContainers(ServiceFault):
    def __init__(self, stack: Stack, service: str, *, timeout_s: int = 5, **kw: Any) -> None:
        super().__init__(stack, service, timeout_s=timeout_s, **kw)
        self.timeout_s = timeout_s

    def _apply(self) -> float | None:
        self.targets = self.running()
        for c in self.targets:
            c.stop(timeout=self.timeout_s)
        return None

    def _revert(self) -> None:
        for c in self.targets:
            if self._fresh(c) is not None and c.status != "running":
                c.start()
        self.targets = []

    def observe(self) -> Effect:
        states = [c.status if self._fresh(c) else "gone" for c in self.targets]
        down = bool(states) and all(s != "running" for s in states)
        return Effect(down, states, "every container of the service stopped")


class KillContainers(StopContainers):
    def __init__(self, stack: Stack, service: str, *, sig: str = "SIGKILL", **kw: Any) -> None:
        super().__init__(stack, service, **kw)
        self._params["signal"] = sig
        self.sig = sig

    def _apply(self) -> float | None:
        self.targets = self.running()
        for c in self.targets:
            c.kill(signal=self.sig)
        return None


class PauseContainers(ServiceFault):
    """``docker pause`` of every running container of the service (the cgroup freezer).

    runc gives up freezing a cgroup whose tasks do not all stop in time ("OCI runtime pause
    failed: unable to freeze", seen once on a 2-core host at load 7, then thaws it): that one
    error is tried again, up to ``FREEZE_TRIES`` times in all, each retry journaled."""

    FREEZE_TRIES: ClassVar[int] = 3

    def _apply(self) -> float | None:
        self.targets = self.running()
        for c in self.targets:
            for attempt in range(1, self.FREEZE_TRIES + 1):
                try:
                    c.pause()
                    break
                except docker.errors.APIError as exc:
                    if "unable to freeze" not in str(exc) or attempt == self.FREEZE_TRIES:
                        raise
                    self._event("retry", container=c.name, attempt=attempt, error=str(exc))
        return None

    def _revert(self) -> None:
        for c in self.targets:
            if self._fresh(c) is not None and c.attrs["State"].get("Paused"):
                c.unpause()
        self.targets = []

    def observe(self) -> Effect:
        paused = [bool(self._fresh(c) and c.attrs["State"].get("Paused")) for c in self.targets]
        return Effect(bool(paused) and all(paused), paused, "every container paused")


class PauseCycle(ServiceFault):
    """Freeze every container of the service for ``pause_ms``, then let it run, again and
    again: one pause starts every ``pause_ms / share`` ms -- a stall that recurs, as a noisy
    neighbour's, a host's memory compaction or a runtime's stop-the-world pause does.

    Why not a CPU quota for a latency rise: a quota throttles only once the service's demand
    exceeds it, so its P95 is a cliff that moves with the host's other load (measured on the
    example stack: 1x at 2x the CPU in use, ~5x at 1.6x, the load's deadline at 0.8x; one 10 %
    step on the reference stack went from 1.65x to 9.6x). A pause cycle leaves the service
    ``1 - share`` of the time whatever its demand, and the queue one pause builds drains before
    the next, so the P95 grows with the pause's length: a request that arrives while the
    service is frozen waits out the rest of the pause, so with more than 5 % of the time frozen
    the P95 rises by about ``pause * (1 - 0.05 / share)`` (plus the drain).

    The freeze is the container's cgroup freezer written directly from the Docker host
    (``freezer.state`` on cgroup v1, ``cgroup.freeze`` on v2) -- the mechanism ``docker pause``
    uses, without its cost: through the Docker API each pause and unpause took ~13 ms and a
    10 Hz cycle cost 0.7 of a core (runc runs per call) on these 2-core hosts, itself a load on
    the latency it aims; the direct write took 0.4 ms (median) and no measurable CPU. Needs
    root on the Docker host (like the packet faults); :class:`FaultError` says so otherwise.

    The cycle runs in a daemon thread from :meth:`apply`; :meth:`set_pause` changes the pause
    (the period follows, keeping the share) from the next cycle on; the revert stops the
    thread and thaws every container. An error in the thread ends the cycle (thawing what it
    can): :meth:`observe` then reports it, and :meth:`set_pause` raises it. The effect: the
    measured frozen share of the last cycles at the current pause.
    """

    def __init__(
        self, stack: Stack, service: str, *, pause_ms: float, share: float, **kw: Any
    ) -> None:
        if not 0 < share < 1:
            raise ValueError(f"share must be between 0 and 1, not {share!r}")
        super().__init__(stack, service, pause_ms=pause_ms, share=share, **kw)
        self.share = share
        self._set(pause_ms)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._freezers: list[Freezer] = []
        self._cycles: list[tuple[float, float, float]] = []  # (pause_ms asked, frozen_s, period_s)
        self.error: BaseException | None = None

    def _set(self, pause_ms: float) -> None:
        if not pause_ms > 0:
            raise ValueError(f"pause_ms must be > 0, not {pause_ms!r}")
        self.pause_ms = float(pause_ms)
        self._params["pause_ms"] = round(self.pause_ms, 1)

    @property
    def period_ms(self) -> float:
        return self.pause_ms / self.share

    def set_pause(self, pause_ms: float) -> float:
        """Change the pause of the running cycle (the next pause has the new length, within
        one period); returns the wall time it was set."""
        if not self.applied or self._thread is None:
            raise FaultError(f"{self.name}: set_pause before apply")
        if self.error is not None:
            raise FaultError(f"{self.name}: the pause cycle stopped: {self.error}")
        self._set(pause_ms)
        self._event("tuned", pause_ms=round(self.pause_ms, 1), period_ms=round(self.period_ms))
        return time.time()

    def _apply(self) -> float | None:
        self.targets = self.running()
        self._freezers = [Freezer(c) for c in self.targets]
        self._stop.clear()
        self._cycles = []
        self.error = None
        self._thread = threading.Thread(target=self._cycle, name=self.name, daemon=True)
        self._thread.start()
        return None

    def _cycle(self) -> None:
        try:
            while not self._stop.is_set():
                pause_ms, period_s = self.pause_ms, self.period_ms / 1000
                started = time.monotonic()
                for f in self._freezers:
                    f.freeze()
                frozen = time.monotonic()
                self._stop.wait(pause_ms / 1000)
                for f in self._freezers:
                    f.thaw()
                thawed = time.monotonic()
                self._cycles.append((pause_ms, thawed - frozen, period_s))
                del self._cycles[:-50]
                self._stop.wait(max(0.0, started + period_s - time.monotonic()))
        except BaseException as exc:
            self.error = exc
            self._event("cycle stopped", error=f"{type(exc).__name__}: {exc}")
            for f in self._freezers:
                with contextlib.suppress(OSError):
                    f.thaw()

    def _revert(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0 + self.pause_ms / 1000)
            if self._thread.is_alive():
                raise FaultError(f"{self.name}: the pause cycle did not stop")
            self._thread = None
        for f in self._freezers:
            with contextlib.suppress(FileNotFoundError):  # the container went away
                f.thaw()
        self._freezers, self.targets = [], []

    def frozen_share(self, cycles: int = 10) -> float | None:
        """The share of time frozen over the last ``cycles`` cycles at the current pause."""
        done = [c for c in self._cycles[-cycles:] if c[0] == self.pause_ms]
        if not done:
            return None
        return sum(f for _, f, _ in done) / sum(p for _, _, p in done)

    def observe(self) -> Effect:
        if self.error is not None:
            return Effect(False, f"stopped: {self.error}", "a running pause cycle")
        share = self.frozen_share()
        expected = f"frozen {self.pause_ms:.0f} ms of every {self.period_ms:.0f} ms"
        ok = share is not None and len(self._cycles) >= 3 and share >= self.share * 0.8
        return Effect(ok, None if share is None else round(share, 3), expected)


class Freezer:
    """A container's cgroup freezer, written from the Docker host (cgroup v1 or v2)."""

    def __init__(self, container: Any) -> None:
        path = _cgroup(container, "freezer", ("freezer.state", "cgroup.freeze"))
        self.v2 = (path / "cgroup.freeze").exists()
        self.file = path / ("cgroup.freeze" if self.v2 else "freezer.state")
        if not os.access(self.file, os.W_OK):
            why = f"freezing {container.name} needs root on the Docker host"
            raise FaultError(f"{why}: {self.file}")
        self.name = container.name

    def freeze(self) -> None:
        self.file.write_text("1" if self.v2 else "FROZEN")

    def thaw(self) -> None:
        self.file.write_text("0" if self.v2 else "THAWED")

    def frozen(self) -> bool:
        if self.v2:
            return "frozen 1" in (self.file.parent / "cgroup.events").read_text()
        return self.file.read_text().strip() == "FROZEN"


class RestartContainers(ServiceFault):
    """``docker restart`` ``times`` times, each time awaiting the container running again.
    One-shot: nothing to revert."""

    def __init__(
        self, stack: Stack, service: str, *, times: int = 1, timeout_s: int = 5, **kw: Any
    ) -> None:
        if times < 1:
            raise ValueError(f"times must be >= 1, not {times}")
        super().__init__(stack, service, times=times, timeout_s=timeout_s, **kw)
        self.times, self.timeout_s = times, timeout_s
        self.done = 0

    def _apply(self) -> float | None:
        self.targets = self.running()
        first: float | None = None
        for _ in range(self.times):
            for c in self.targets:
                c.restart(timeout=self.timeout_s)
                first = first or time.time()
            for c in self.targets:
                _await_running(c, f"{self.service} running after a restart")
            self.done += 1
        return first

    def _revert(self) -> None:
        pass

    def observe(self) -> Effect:
        return Effect(self.done == self.times, self.done, f"{self.times} restarts done")


class CrashProcess(ServiceFault):
    """SIGKILL the main process from the host ``times`` times, each time awaiting the restart
    policy's comeback. One-shot: nothing to revert. Needs the daemon on this host (its PIDs)."""

    def __init__(
        self, stack: Stack, service: str, *, times: int = 1, comeback_s: float = 60.0, **kw: Any
    ) -> None:
        if times < 1:
            raise ValueError(f"times must be >= 1, not {times}")
        super().__init__(stack, service, times=times, **kw)
        self.times, self.comeback_s = times, comeback_s
        self.before: dict[str, int] = {}

    def _apply(self) -> float | None:
        self.targets = self.running()
        self.before = {c.id: int(c.attrs["RestartCount"]) for c in self.targets}
        first: float | None = None
        for n in range(self.times):
            for c in self.targets:
                c.reload()
                pid = int(c.attrs["State"].get("Pid") or 0)
                if pid <= 1:
                    raise FaultError(f"{self.name}: container {c.name} has no host PID")
                os.kill(pid, signal.SIGKILL)
                first = first or time.time()
            for c in self.targets:
                _await_restarts(c, self.before[c.id] + n + 1, self.comeback_s)
        return first

    def _revert(self) -> None:
        pass

    def observe(self) -> Effect:
        counts = {}
        for c in self.targets:
            if self._fresh(c) is not None:
                counts[c.name] = int(c.attrs["RestartCount"]) - self.before.get(c.id, 0)
        ok = bool(counts) and all(n >= self.times for n in counts.values())
        return Effect(ok, counts, f">= {self.times} policy restarts per container")


class CpuQuota(ServiceFault):
    """Limit each container to ``cpus`` CPUs (CFS quota over a 100 ms period).

    :meth:`set_cpus` changes the quota of an applied fault in place (a drill aiming at a
    level steps it); the revert restores what the containers had before the first apply."""

    PERIOD_US: ClassVar[int] = 100_000

    def __init__(self, stack: Stack, service: str, *, cpus: float, **kw: Any) -> None:
        super().__init__(stack, service, cpus=cpus, **kw)
        self._quota(cpus)
        self.saved: dict[str, tuple[int, int]] = {}

    def _quota(self, cpus: float) -> None:
        if not cpus > 0:
            raise ValueError(f"cpus must be > 0, not {cpus!r}")
        self.cpus = cpus
        self.quota_us = max(1000, round(cpus * self.PERIOD_US))  # the kernel's minimum: 1 ms
        self._params["cpus"] = cpus

    def set_cpus(self, cpus: float) -> float:
        """Set the quota of the applied fault to ``cpus``; returns when it is in force."""
        if not self.applied:
            raise FaultError(f"{self.name}: set_cpus before apply")
        self._quota(cpus)
        for c in self.targets:
            if self._fresh(c) is not None:
                c.update(cpu_period=self.PERIOD_US, cpu_quota=self.quota_us)
        self._event("tuned", cpus=cpus)
        return time.time()

    def _apply(self) -> float | None:
        self.targets = self.running()
        for c in self.targets:
            hc = c.attrs["HostConfig"]
            if int(hc.get("NanoCpus") or 0):
                raise FaultError(f"{c.name} has a --cpus limit; set its quota by hand")
            self.saved[c.id] = (int(hc.get("CpuQuota") or 0), int(hc.get("CpuPeriod") or 0))
            c.update(cpu_period=self.PERIOD_US, cpu_quota=self.quota_us)
        return None

    def _revert(self) -> None:
        for c in self.targets:
            if self._fresh(c) is None or c.id not in self.saved:
                continue
            quota, period = self.saved[c.id]
            c.update(cpu_quota=quota or -1, cpu_period=period or self.PERIOD_US)
        self.targets, self.saved = [], {}

    def observe(self) -> Effect:
        quotas = {}
        for c in self.targets:
            if self._fresh(c) is not None:
                hc = c.attrs["HostConfig"]
                quotas[c.name] = int(hc.get("CpuQuota") or 0) / int(hc.get("CpuPeriod") or 1)
        # the kernel holds whole microseconds: within one of the period is the quota asked for
        step = 1 / self.PERIOD_US
        ok = bool(quotas) and all(abs(q - self.cpus) <= step for q in quotas.values())
        return Effect(ok, quotas, f"a CFS quota of {self.cpus:g} CPUs on every container")


class MemoryLimit(ServiceFault):
    """Set each container's memory limit (swap included) to ``limit_bytes``, or to
    ``current use / target_ratio`` so that the monitor reads ``target_ratio``.

    ``oom_kill=False`` holds the containers at the limit instead of letting the kernel's OOM
    killer end them there: a squeezed process that grows into the limit then waits for memory
    (its use stays at the limit, as a leak's does until something gives) rather than being
    killed and restarted. Measured on the example stack (daphne, ~58 MB, squeezed to 96.5 %:
    2 MB of room): with the killer on, it was OOM-killed 2 s after the squeeze and every ~16 s
    after that, and its use restarted from its import footprint each time, so "above 95 %
    for 12 s" held only by chance. cgroup v1: ``memory.oom_control``'s ``oom_kill_disable``;
    cgroup v2 (not measured here): ``memory.high`` halfway between the use and the limit, where
    the kernel throttles the container's allocations before the limit's OOM kill.

    ``hold_s`` (with ``target_ratio``): every ``hold_s`` seconds a daemon thread reads each
    container's ratio again and, where it fell below ``target_ratio - HOLD_SLACK``, lowers the
    limit to ``use / target_ratio`` once more -- the room left stays what a leak's would be.
    Without it the squeeze does not hold its level: on the example stack (2026-12-03) the
    kernel, reclaiming under the new limit, took 2 MB of daphne's 58 MB 7 s after the squeeze,
    the ratio fell from 0.97 to 0.937 and took 15 s to creep back over 0.95, and the monitor's
    "above 95 % for 12 s" decided in 27.8 s against a 23 s budget. The limit never goes below
    ``HOLD_FLOOR`` of the first squeeze's (a use that keeps falling is no leak: the thread
    stops following and the ratio shows it); every lowering is journaled (``held``).
    """

    HOLD_SLACK: ClassVar[float] = 0.005
    HOLD_FLOOR: ClassVar[float] = 0.75

    def __init__(
        self,
        stack: Stack,
        service: str,
        *,
        limit_bytes: int | None = None,
        target_ratio: float | None = None,
        oom_kill: bool = True,
        hold_s: float | None = None,
        **kw: Any,
    ) -> None:
        if (limit_bytes is None) == (target_ratio is None):
            raise ValueError("give exactly one of limit_bytes and target_ratio")
        if target_ratio is not None and not 0 < target_ratio < 1:
            raise ValueError(f"target_ratio must be in (0, 1), not {target_ratio!r}")
        if limit_bytes is not None and limit_bytes < 6 * 1024 * 1024:
            raise ValueError(f"limit_bytes {limit_bytes} is below Docker's 6 MiB minimum")
        if hold_s is not None and (target_ratio is None or not hold_s > 0):
            raise ValueError("hold_s needs a target_ratio and must be > 0")
        super().__init__(
            stack,
            service,
            limit_bytes=limit_bytes,
            target_ratio=target_ratio,
            oom_kill=oom_kill,
            hold_s=hold_s,
            **kw,
        )
        self.limit_bytes, self.target_ratio, self.oom_kill = limit_bytes, target_ratio, oom_kill
        self.hold_s = hold_s
        self.saved: dict[str, tuple[int, int]] = {}
        self.set_to: dict[str, int] = {}
        self.first: dict[str, int] = {}  # container -> the first squeeze's limit
        self.held: dict[str, tuple[Path, str]] = {}  # container -> (cgroup file, its old value)
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _apply(self) -> float | None:
        self.targets = self.running()
        for c in self.targets:
            hc = c.attrs["HostConfig"]
            self.saved[c.id] = (int(hc.get("Memory") or 0), int(hc.get("MemorySwap") or 0))
            if self.limit_bytes is not None:
                limit = self.limit_bytes
            else:
                assert self.target_ratio is not None
                usage = container_memory(c)[0]
                limit = int(usage / self.target_ratio)
            self.first[c.id] = limit
            self._squeeze(c, limit)
        if self.hold_s is not None:
            self._stop.clear()
            self.error = None
            self._thread = threading.Thread(target=self._follow, name=self.name, daemon=True)
            self._thread.start()
        return None

    def _squeeze(self, container: Any, limit: int) -> None:
        if not self.oom_kill:
            self._hold(container, limit)
        self.set_to[container.id] = limit
        container.update(mem_limit=limit, memswap_limit=limit)

    def _hold(self, container: Any, limit: int) -> None:
        """No OOM kill at ``limit`` (see the class docstring), set before the limit is."""
        cgroup = _memory_cgroup(container)
        v1 = cgroup / "memory.oom_control"
        if v1.exists():
            old = "1" if "oom_kill_disable 1" in v1.read_text() else "0"
            self.held.setdefault(container.id, (v1, old))
            v1.write_text("1")
            return
        v2 = cgroup / "memory.high"
        if not v2.exists():
            raise FaultError(f"{container.name}: no memory.oom_control or memory.high in {cgroup}")
        usage = container_memory(container)[0]
        self.held.setdefault(container.id, (v2, v2.read_text().strip()))
        v2.write_text(str(usage + max(0, limit - usage) // 2))

    def hold_step(self) -> list[tuple[str, float, int]]:
        """One look of the hold: lower the limit of each container whose ratio fell below
        ``target_ratio - HOLD_SLACK`` (not below the floor); returns (container, ratio read,
        new limit) of each lowering."""
        assert self.target_ratio is not None
        done: list[tuple[str, float, int]] = []
        for c in self.targets:
            usage, limit = container_memory(c)
            if not limit or usage / limit >= self.target_ratio - self.HOLD_SLACK:
                continue
            new = max(int(usage / self.target_ratio), int(self.first[c.id] * self.HOLD_FLOOR))
            if new >= self.set_to[c.id]:
                continue  # at the floor: no lower
            self._squeeze(c, new)
            ratio = round(usage / limit, 4)
            self._event("held", container=c.name, ratio=ratio, limit=new)
            done.append((c.name, ratio, new))
        return done

    def _follow(self) -> None:
        assert self.hold_s is not None
        try:
            while not self._stop.wait(self.hold_s):
                self.hold_step()
        except BaseException as exc:  # the hold ends; observe reports it
            self.error = exc
            self._event("hold stopped", error=f"{type(exc).__name__}: {exc}")

    def _revert(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30.0)
            if self._thread.is_alive():
                raise FaultError(f"{self.name}: the hold did not stop")
            self._thread = None
        for c in self.targets:
            if self._fresh(c) is None or c.id not in self.saved:
                continue
            memory, swap = self.saved[c.id]
            c.update(mem_limit=memory or -1, memswap_limit=swap or -1)
        for path, old in self.held.values():  # after the limit: a held process resumes first
            with contextlib.suppress(OSError):  # the container (and its cgroup) went away
                path.write_text(old)
        self.targets, self.saved, self.set_to, self.first, self.held = [], {}, {}, {}, {}

    def observe(self) -> Effect:
        if self.error is not None:
            return Effect(False, f"hold stopped: {self.error}", "a held memory squeeze")
        ratios = {}
        for c in self.targets:
            if self._fresh(c) is None:
                continue
            usage, limit = container_memory(c)
            ratios[c.name] = round(usage / limit, 4) if limit else None
        limits_ok = all(
            int(c.attrs["HostConfig"].get("Memory") or 0) == self.set_to.get(c.id)
            for c in self.targets
        )
        ok = bool(ratios) and limits_ok
        if self.target_ratio is not None:
            ok = ok and all(
                r is not None and r >= self.target_ratio - 0.02 for r in ratios.values()
            )
        return Effect(
            ok,
            ratios,
            "the new limit in force"
            + (f", use >= {self.target_ratio - 0.02:.3f} of it" if self.target_ratio else ""),
        )


def container_memory(container: Any) -> tuple[int, int]:
    """(usage as ``docker stats`` counts it, limit) of a running container, from its cgroup."""
    reading = read_cgroup_memory(_memory_cgroup(container), machine_memory())
    return reading.usage_bytes, reading.limit_bytes


def _memory_cgroup(container: Any) -> Path:
    return _cgroup(container, "memory", ("memory.usage_in_bytes", "memory.current"))


def _cgroup(container: Any, controller: str, files: tuple[str, ...]) -> Path:
    """The container's ``controller`` cgroup directory (or its unified one), seen from the host:
    :class:`FaultError` when none is visible (a remote daemon)."""
    container.reload()
    pid = int(container.attrs["State"].get("Pid") or 0)
    cgroup = find_cgroup(container.id, pid, controller, files) if pid else None
    if cgroup is None:
        raise FaultError(f"no {controller} cgroup visible for {container.name} (remote daemon?)")
    return cgroup


def container_memory_ratio(container: Any) -> float:
    usage, limit = container_memory(container)
    return usage / limit if limit else 0.0


def _await_restarts(container: Any, want: int, timeout_s: float) -> None:
    def look() -> tuple[int, str]:
        container.reload()
        return int(container.attrs["RestartCount"]), str(container.status)

    wait_for(
        look,
        lambda seen: seen[0] >= want and seen[1] == "running",
        timeout_s=timeout_s,
        what=f"{container.name} restarted by its restart policy ({want} restarts)",
        interval_s=0.1,
        hint="a container without a restart policy stays down",
    )


def _await_running(container: Any, what: str, timeout_s: float = 60.0) -> None:
    wait_for(
        lambda: (container.reload(), container.status)[1],
        lambda status: status == "running",
        timeout_s=timeout_s,
        what=what,
        interval_s=0.1,
    )
