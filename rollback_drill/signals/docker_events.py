"""Container restarts of a Compose project, from the Docker events stream.

The plan's trigger "ASGI containers crashing repeatedly (> 5 restarts in 10 minutes)" is read
from these event series (labels ``service`` = the Compose service, ``container`` = its name;
one sample of value 1.0 per event, at the event's own time):

``restarts``
    **What counts as a restart**: a ``start`` of a container that this collector saw ``die``
    (or found exited when it started). That is every comeback of the *same* container: by its
    restart policy after a crash, by ``docker restart`` / ``docker compose restart``, or by a
    ``start`` after a ``stop``. A crash that is not followed by a start (no restart policy) is
    not a restart: it shows in ``dies``/``crashes``, and the service being down is another
    trigger's business. New containers (scale up, ``compose up`` recreating with a new image)
    are not restarts. The ``restart`` event itself is not counted: it always follows the
    ``die`` + ``start`` of the same restart, so counting it would double-count.
``dies``
    every ``die``; the sample's value is the exit code.
``crashes``
    a ``die`` that nobody asked for through the API: no ``kill`` event (which ``docker stop``,
    ``docker kill``, ``docker restart`` and Compose all emit first) since the container's last
    start, or an ``oom`` before it. An injected ``docker kill`` therefore makes a restart but
    not a crash; a process that exits or is OOM-killed makes both.
``ooms``
    every ``oom`` event (the cgroup's OOM killer fired; the container dies only if it was its
    main process, and that die is then a crash).

Read them with ``collector.series.count("restarts", start, end, service="backend-asgi")``
(0 when nothing happened) or :meth:`DockerEventsCollector.count`.

The stream is filtered by the daemon (project label, container events of interest) and by
service here (Docker ANDs label filters, so several services cannot be ORed by the daemon).
A dropped stream is reopened with ``since`` = the last event seen minus a 2 s margin, and
events already seen (container, action, time) are ignored, so a daemon hiccup loses nothing
and counts nothing twice. (Repeats are not recognised by time order: the daemon may deliver
an ``oom`` after a later-stamped event of another container.) ``stop()`` closes the stream to
unblock the thread.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from rollback_drill.signals._docker import (
    DockerClient,
    new_client,
    project_filter,
    service_of,
)
from rollback_drill.signals.base import Collector
from rollback_drill.signals.series import Clock

__all__ = ["EVENT_SERIES", "DockerEventsCollector"]

EVENT_SERIES = ("restarts", "dies", "crashes", "ooms")
_ACTIONS = ["start", "die", "kill", "oom", "restart", "destroy"]
_REPLAY_MARGIN_NS = 2_000_000_000
_SEEN_MAX = 4096


class DockerEventsCollector(Collector):
    """Restart/die/crash/oom event series per service of the Compose project ``project``.

    ``services``: only these services (default: all of the project). ``client``: a
    ``docker.DockerClient`` to use (not closed here); by default one from the environment,
    closed on stop. ``connect_timeout``: how long ``start()`` waits for the stream to open
    (a failure is recorded in ``errors`` and retried every ``reconnect_delay`` seconds).
    """

    kind = "docker-events"

    def __init__(
        self,
        project: str,
        services: Iterable[str] = (),
        *,
        client: DockerClient | None = None,
        clock: Clock | None = None,
        retention: float | None = None,
        connect_timeout: float = 10.0,
        reconnect_delay: float = 1.0,
    ) -> None:
        super().__init__(clock=clock, retention=retention)
        self.project = project
        self.services = frozenset(services)
        self.connect_timeout = connect_timeout
        self.reconnect_delay = reconnect_delay
        self._client = client
        self._owns_client = client is None
        self._stream: Any = None
        self._stream_lock = threading.Lock()
        self._ready = threading.Event()
        self._since = ""
        self._last_nano = 0
        self._seen: set[tuple[str, str, int]] = set()
        self._seen_order: deque[tuple[str, str, int]] = deque()
        self._died: set[str] = set()
        self._asked: set[str] = set()
        self._oomed: set[str] = set()

    def count(
        self,
        event: str,
        service: str | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> int:
        """Events of one kind (``restarts``...) in the window, for one service or all."""
        if event not in EVENT_SERIES:
            raise ValueError(f"unknown event series {event!r}; one of {', '.join(EVENT_SERIES)}")
        labels = {} if service is None else {"service": service}
        return self.series.count(event, start, end, **labels)

    # -- lifecycle ---------------------------------------------------------------------------

    def _start(self) -> None:
        if self._client is None:
            self._client = new_client()
        now_ns = time.time_ns()
        self._since = f"{now_ns // 1_000_000_000}.{now_ns % 1_000_000_000:09d}"
        self.spawn("stream", self._run)
        self._ready.wait(self.connect_timeout)

    def _interrupt(self) -> None:
        with self._stream_lock:
            stream = self._stream
        if stream is not None:
            stream.close()

    def _close(self) -> None:
        if self._owns_client and self._client is not None:
            self._client.close()

    # -- the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._note_exited_containers()
        except Exception as exc:
            self.record_error("list", exc)
        while not self.stopping:
            try:
                self._follow()
            except Exception as exc:
                if self.stopping:
                    return
                self.record_error("stream", exc)
            finally:
                self._ready.set()
                with self._stream_lock:
                    self._stream = None
            if self.wait(self.reconnect_delay):
                return

    def _note_exited_containers(self) -> None:
        """Containers already dead when we start: their next start is a restart too."""
        assert self._client is not None
        for c in self._client.api.containers(all=True, filters=project_filter(self.project)):
            if self._wanted(c.get("Labels")) and c.get("State") in ("exited", "dead"):
                self._died.add(c["Id"])

    def _follow(self) -> None:
        assert self._client is not None
        filters = {**project_filter(self.project), "type": ["container"], "event": _ACTIONS}
        since = self._since
        if self._last_nano:  # reconnecting: replay a margin, the seen set drops repeats
            resume = self._last_nano - _REPLAY_MARGIN_NS
            since = f"{resume // 1_000_000_000}.{resume % 1_000_000_000:09d}"
        stream = self._client.api.events(since=since, filters=filters, decode=True)
        with self._stream_lock:
            self._stream = stream
        if self.stopping:  # stop() ran before the stream existed: it could not close it
            stream.close()
            return
        self._ready.set()
        for event in stream:
            self.handle(event)
            self.account()
        if not self.stopping:
            self.record_error("stream", "the events stream ended; reconnecting")

    def _wanted(self, labels: Mapping[str, str] | None) -> bool:
        return not self.services or service_of(labels) in self.services

    def handle(self, event: Mapping[str, Any]) -> None:
        """Count one event as the daemon sends it (decoded JSON); also for replaying a log."""
        action = str(event.get("Action") or event.get("status") or "")
        actor = event.get("Actor") or {}
        cid = str(actor.get("ID") or event.get("id") or "")
        attrs: Mapping[str, str] = actor.get("Attributes") or {}
        nano = int(event.get("timeNano") or int(event.get("time", 0)) * 1_000_000_000)
        key = (cid, action, nano)
        if key in self._seen:
            return  # replayed after a reconnect
        # remember recent events; the daemon may deliver them slightly out of time order
        self._seen.add(key)
        self._seen_order.append(key)
        if len(self._seen_order) > _SEEN_MAX:
            self._seen.discard(self._seen_order.popleft())
        self._last_nano = max(self._last_nano, nano)
        if not self._wanted(attrs):
            return
        t = self.clock.from_wall(nano / 1e9)  # through the mapping now: it arrives within ms
        labels = {"service": service_of(attrs), "container": attrs.get("name", cid[:12])}
        if action == "kill":
            self._asked.add(cid)
        elif action == "oom":
            self._oomed.add(cid)
            self.series.append("ooms", t, 1.0, **labels)
        elif action == "die":
            self.series.append("dies", t, float(attrs.get("exitCode", "nan")), **labels)
            if cid not in self._asked or cid in self._oomed:
                self.series.append("crashes", t, 1.0, **labels)
            self._died.add(cid)
        elif action == "start":
            if cid in self._died:
                self.series.append("restarts", t, 1.0, **labels)
            self._forget(cid)
        elif action == "destroy":
            self._forget(cid)

    def _forget(self, cid: str) -> None:
        self._died.discard(cid)
        self._asked.discard(cid)
        self._oomed.discard(cid)
