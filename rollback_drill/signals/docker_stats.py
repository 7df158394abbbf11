"""Memory use against the memory limit, per container of a Compose project.

Usage is defined exactly as ``docker stats`` shows it (the CLI's
``calculateMemUsageUnixNoCache``): the cgroup's usage minus its inactive file cache
(``total_inactive_file`` on cgroup v1, ``inactive_file`` on v2), i.e. page cache the kernel
can drop at once is not "used". The limit is the cgroup's limit, capped at the machine's
memory when the container has none, as the daemon reports it.

How it is read, and why. ``source="cgroup"`` (the default through ``"auto"``) reads the
container's memory cgroup files directly (``memory.usage_in_bytes``, ``memory.stat``,
``memory.limit_in_bytes``; v2: ``memory.current``/``memory.stat``/``memory.max``): the very
files the daemon reads for ``docker stats``, so the numbers are the same, taken at the
instant we choose, for a few microseconds of CPU and no work for the daemon. The Docker API
is slow here: one ``stats(stream=False)`` call takes ~1 s (the daemon samples once a second;
``one_shot`` does not help on this daemon), and a streaming ``stats`` per container makes the
daemon sample every container every second. That is the fallback (``source="api"``, or
``"auto"`` when a container's cgroup directory is not visible: remote daemon, another cgroup
namespace): one thread per container reading the stats stream, closed when the container
goes away or the collector stops. Each tick also lists the project's running containers
(one cheap API call), so containers that appear (scale up) get series and readers, and
containers that disappear are dropped.

Series (labels ``service``, ``container`` = the container's name):

- ``memory_usage_bytes``, ``memory_limit_bytes`` (bytes), ``memory_ratio`` (usage / limit,
  0..1): one sample per container per tick.
- per service only: ``memory_ratio_max`` (the highest ratio of its containers at that tick)
  and ``containers_running`` (how many of its containers are running).

"Memory > 95 % sustained" is then ``series.get("memory_ratio", ...).min(t0, t1) > 0.95`` per
container, or ``memory_ratio_max`` per service.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rollback_drill.signals._docker import (
    DockerClient,
    new_client,
    project_filter,
    service_of,
)
from rollback_drill.signals.base import Collector
from rollback_drill.signals.series import Clock

__all__ = [
    "DockerStatsCollector",
    "MemoryReading",
    "docker_usage",
    "find_memory_cgroup",
    "machine_memory",
    "read_cgroup_memory",
    "reading_from_api",
]

Source = Literal["auto", "cgroup", "api"]
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class MemoryReading:
    usage_bytes: int
    limit_bytes: int

    @property
    def ratio(self) -> float:
        return self.usage_bytes / self.limit_bytes if self.limit_bytes > 0 else 0.0


def docker_usage(usage: int, stat: Mapping[str, int]) -> int:
    """``docker stats``'s memory usage: usage minus inactive file cache (v1, then v2 key)."""
    v1 = stat.get("total_inactive_file")
    if v1 is not None and v1 < usage:
        return usage - v1
    v2 = stat.get("inactive_file", 0)
    return usage - v2 if v2 < usage else usage


def machine_memory() -> int:
    """Total memory of the machine (``MemTotal``), the daemon's cap for unlimited containers."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise OSError("MemTotal missing from /proc/meminfo")


def _read_stat(path: Path) -> dict[str, int]:
    stat: dict[str, int] = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            stat[key] = int(value)
    return stat


def read_cgroup_memory(cgroup_dir: Path, machine_bytes: int) -> MemoryReading:
    """One reading from a container's memory cgroup directory (v1 or v2)."""
    if (cgroup_dir / "memory.usage_in_bytes").exists():  # cgroup v1
        usage = int((cgroup_dir / "memory.usage_in_bytes").read_text())
        limit = int((cgroup_dir / "memory.limit_in_bytes").read_text())
    else:  # cgroup v2
        usage = int((cgroup_dir / "memory.current").read_text())
        raw = (cgroup_dir / "memory.max").read_text().strip()
        limit = machine_bytes if raw == "max" else int(raw)
    stat = _read_stat(cgroup_dir / "memory.stat")
    return MemoryReading(docker_usage(usage, stat), min(limit, machine_bytes))


def reading_from_api(memory_stats: Mapping[str, Any]) -> MemoryReading | None:
    """One reading from the ``memory_stats`` of the stats API (``None`` when not running)."""
    if "usage" not in memory_stats or not memory_stats.get("limit"):
        return None
    stat = {k: int(v) for k, v in (memory_stats.get("stats") or {}).items()}
    return MemoryReading(docker_usage(int(memory_stats["usage"]), stat), int(memory_stats["limit"]))


def find_memory_cgroup(container_id: str, pid: int, root: Path = CGROUP_ROOT) -> Path | None:
    """The container's memory cgroup directory, from its init process, else the usual paths."""
    files = ("memory.usage_in_bytes", "memory.current")
    return find_cgroup(container_id, pid, "memory", files, root)


def find_cgroup(
    container_id: str, pid: int, controller: str, files: tuple[str, ...], root: Path = CGROUP_ROOT
) -> Path | None:
    """The container's cgroup directory of ``controller`` (cgroup v1) or its unified one (v2):
    the first candidate holding one of ``files``, from its init process's ``/proc/<pid>/cgroup``,
    else Docker's usual paths (cgroupfs and systemd drivers)."""
    candidates: list[Path] = []
    try:
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controller in controllers.split(","):
                candidates.append(root / controller / path.lstrip("/"))
            elif controllers == "":
                candidates.append(root / path.lstrip("/"))
    except (OSError, ValueError):
        pass
    for base in (root / controller, root):
        candidates += [
            base / "docker" / container_id,
            base / "system.slice" / f"docker-{container_id}.scope",
        ]
    for c in candidates:
        if any((c / f).exists() for f in files):
            return c
    return None


@dataclass
class _Tracked:
    cid: str
    service: str
    name: str
    cgroup: Path | None = None
    latest: MemoryReading | None = None
    gone: bool = False


class DockerStatsCollector(Collector):
    """Memory usage / limit / ratio per container of the Compose project ``project``.

    ``services``: only these (default all). ``interval``: seconds between samples.
    ``source``: ``"auto"`` (cgroup files, API where they are not visible), ``"cgroup"``,
    ``"api"``. ``client``: a ``docker.DockerClient`` (not closed here); default from the
    environment, closed on stop.
    """

    kind = "docker-stats"

    def __init__(
        self,
        project: str,
        services: Iterable[str] = (),
        *,
        interval: float = 1.0,
        source: Source = "auto",
        client: DockerClient | None = None,
        clock: Clock | None = None,
        retention: float | None = None,
        cgroup_root: Path = CGROUP_ROOT,
    ) -> None:
        super().__init__(clock=clock, retention=retention)
        if source not in ("auto", "cgroup", "api"):
            raise ValueError(f"source must be auto, cgroup or api, not {source!r}")
        self.project = project
        self.services = frozenset(services)
        self.interval = interval
        self.source: Source = source
        self.cgroup_root = cgroup_root
        self._client = client
        self._owns_client = client is None
        self._tracked: dict[str, _Tracked] = {}
        self._machine = machine_memory() if os.path.exists("/proc/meminfo") else 0

    def _start(self) -> None:
        if self._client is None:
            self._client = new_client()
        self.spawn("sampler", lambda: self.every(self.interval, self._tick, "sample"))

    def _close(self) -> None:
        if self._owns_client and self._client is not None:
            self._client.close()

    # -- one tick ----------------------------------------------------------------------------

    def _tick(self) -> None:
        assert self._client is not None
        filters = {**project_filter(self.project), "status": ["running"]}
        running = {
            c["Id"]: c
            for c in self._client.api.containers(filters=filters)
            if not self.services or service_of(c.get("Labels")) in self.services
        }
        for cid in list(self._tracked):
            if cid not in running:
                gone = self._tracked.pop(cid, None)
                if gone is not None:
                    gone.gone = True
        per_service: dict[str, list[float]] = {}
        t = self.clock.now()
        for cid, c in running.items():
            per_service.setdefault(service_of(c.get("Labels")), [])
            tracked = self._tracked.get(cid)
            if tracked is None:
                try:
                    tracked = self._track(cid, c)
                except Exception as exc:  # e.g. removed between the listing and the inspect
                    self.record_error("track", exc)
                    continue
            reading = self._read(tracked)
            if reading is None:
                continue
            per_service[tracked.service].append(reading.ratio)
            labels = {"service": tracked.service, "container": tracked.name}
            self.series.append("memory_usage_bytes", t, float(reading.usage_bytes), **labels)
            self.series.append("memory_limit_bytes", t, float(reading.limit_bytes), **labels)
            self.series.append("memory_ratio", t, reading.ratio, **labels)
        for service in {*per_service, *(s for s in self.services)}:
            ratios = per_service.get(service, [])
            self.series.append("containers_running", t, float(len(ratios)), service=service)
            if ratios:
                self.series.append("memory_ratio_max", t, max(ratios), service=service)

    def _track(self, cid: str, c: Mapping[str, Any]) -> _Tracked:
        names = c.get("Names") or [cid[:12]]
        tracked = _Tracked(cid, service_of(c.get("Labels")), str(names[0]).lstrip("/"))
        if self.source != "api":
            assert self._client is not None
            pid = int(self._client.api.inspect_container(cid)["State"].get("Pid") or 0)
            tracked.cgroup = find_memory_cgroup(cid, pid, self.cgroup_root)
            if tracked.cgroup is None and self.source == "cgroup":
                self.record_error("cgroup", f"no memory cgroup visible for {tracked.name}")
        if tracked.cgroup is None and self.source != "cgroup":
            self.spawn(f"stats:{tracked.name}", lambda: self._stream(tracked))
        self._tracked[cid] = tracked
        return tracked

    def _read(self, tracked: _Tracked) -> MemoryReading | None:
        if tracked.cgroup is None:
            return tracked.latest
        try:
            return read_cgroup_memory(tracked.cgroup, self._machine or 2**63)
        except (OSError, ValueError) as exc:
            if not tracked.cgroup.exists():  # it stopped between the listing and the read
                return None
            self.record_error("cgroup", exc)
            return None

    # -- API fallback: one stats stream per container ----------------------------------------

    def _stream(self, tracked: _Tracked) -> None:
        assert self._client is not None
        api = self._client.api
        url = f"{api.base_url}/v{api.api_version}/containers/{tracked.cid}/stats"
        try:
            with api.get(url, params={"stream": "1"}, stream=True, timeout=(5, 10)) as response:
                response.raise_for_status()
                for line in response.iter_lines():
                    if self.stopping or tracked.gone:
                        return
                    if line:
                        memory = json.loads(line).get("memory_stats", {})
                        tracked.latest = reading_from_api(memory)
                    self.account()
        finally:
            # no stale readings: forget the container, the next tick tracks it anew if it runs
            tracked.latest = None
            if self._tracked.get(tracked.cid) is tracked:
                self._tracked.pop(tracked.cid, None)
