"""PostgreSQL's own word on the connections it failed, from its log read through Docker.

PostgreSQL writes one ``FATAL`` line for every connection it refuses or ends, whoever the
client is; the official image logs to the container's output, which the Docker daemon keeps
with a timestamp per line. This collector polls that output of the PostgreSQL role's
containers (every ``interval`` s, ``docker logs --since``; new containers are picked up at
the next poll) and appends one sample of 1.0 per matching line, at the daemon's timestamp:

``connection_failures`` (label ``reason``: ``refused`` or ``ended``)
    **refused** -- a new connection PostgreSQL turned away: ``sorry, too many clients
    already``, ``remaining connection slots are reserved ...``, ``database "..." is not
    currently accepting connections``, ``the database system is starting up / shutting down /
    in recovery mode / not yet accepting connections``. **ended** -- an established connection
    PostgreSQL closed on its client: ``terminating connection due to administrator command``
    (``pg_terminate_backend``, a fast shutdown) and ``terminating connection because of crash
    of another server process``.

What it cannot see: a client that never reached PostgreSQL (PostgreSQL down, its port
unreachable: no process writes a line), failures of authentication (not counted: a wrong
password is a configuration problem, not a lost connection), and who the client was (the
default ``log_line_prefix`` names no client: the app, an operator's ``psql`` and the drill's
own fault are counted alike). A PostgreSQL that logs to files (``logging_collector = on``)
or to syslog shows nothing here; ``errors`` stays empty then, only the series do.
:mod:`rollback_drill.signals.connection_failures` turns these counts into the plan's reading.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from rollback_drill.signals._docker import (
    PROJECT_LABEL,
    SERVICE_LABEL,
    DockerClient,
    new_client,
)
from rollback_drill.signals.base import Collector
from rollback_drill.signals.series import Clock

__all__ = [
    "ENDED",
    "REFUSED",
    "SERIES",
    "PostgresLogCollector",
    "classify",
    "parse_lines",
]

SERIES = "connection_failures"
REFUSED = (
    "sorry, too many clients already",
    "remaining connection slots are reserved",
    "is not currently accepting connections",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "the database system is not accepting connections",
)
ENDED = (
    "terminating connection due to administrator command",
    "terminating connection because of crash of another server process",
)
_OVERLAP_S = 1  # each poll reads back this far: lines stamped at the last poll's edge


def classify(text: str) -> str | None:
    """``refused``, ``ended`` or None for one PostgreSQL log line (the message after its
    prefix: ``... FATAL:  sorry, too many clients already``)."""
    if "FATAL:" not in text and "WARNING:" not in text:
        return None
    if any(m in text for m in REFUSED):
        return "refused"
    if any(m in text for m in ENDED):
        return "ended"
    return None


def parse_timestamp(stamp: str) -> float:
    """A Docker log timestamp (RFC 3339, nanoseconds, ``Z``) -> epoch seconds."""
    base, _, frac = stamp.rstrip("Z").partition(".")
    seconds = datetime.fromisoformat(base).replace(tzinfo=UTC).timestamp()
    return seconds + (float(f"0.{frac}") if frac else 0.0)


def parse_lines(raw: bytes | str) -> Iterator[tuple[str, float, str]]:
    """``(stamp, epoch seconds, text)`` of each line of ``docker logs --timestamps`` output."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    for line in text.splitlines():
        stamp, sep, rest = line.partition(" ")
        if not sep or not stamp[:1].isdigit():
            continue
        try:
            at = parse_timestamp(stamp)
        except ValueError:
            continue
        yield stamp, at, rest


class PostgresLogCollector(Collector):
    """``connection_failures`` from the log of the Compose service ``service`` of ``project``
    (module docstring). ``since``: epoch seconds the first poll reads from (default: start)."""

    kind = "postgres-log"

    def __init__(
        self,
        project: str,
        service: str,
        *,
        interval: float = 1.0,
        client: DockerClient | None = None,
        clock: Clock | None = None,
        retention: float | None = None,
        since: float | None = None,
    ) -> None:
        super().__init__(clock=clock, retention=retention)
        self.project = project
        self.service = service
        self.interval = interval
        self._client = client
        self._owns_client = client is None
        self._since = since
        self._read_to: dict[str, float] = {}  # container id -> newest line seen (epoch s)
        # lines read within the overlap, with their time: a poll reads them again
        self._seen: dict[str, dict[tuple[str, str], float]] = {}

    def _start(self) -> None:
        if self._client is None:
            self._client = new_client()
        if self._since is None:
            self._since = self.clock.to_wall(self.clock.now())
        self.spawn("poll", lambda: self.every(self.interval, self.poll, "poll"))

    def _close(self) -> None:
        if self._owns_client and self._client is not None:
            self._client.close()

    def _containers(self) -> list[str]:
        assert self._client is not None
        labels = [f"{PROJECT_LABEL}={self.project}", f"{SERVICE_LABEL}={self.service}"]
        found = self._client.api.containers(all=True, filters={"label": labels})
        return [str(c["Id"]) for c in found]

    def poll(self) -> int:
        """Read each container's new lines; returns the failures appended."""
        assert self._client is not None and self._since is not None
        added = 0
        for cid in self._containers():
            since = max(self._since, self._read_to.get(cid, self._since) - _OVERLAP_S)
            try:
                raw = self._client.api.logs(
                    cid, stdout=True, stderr=True, timestamps=True, since=math.floor(since) or 1
                )
            except Exception as exc:  # a container removed between the listing and here
                self.record_error(f"logs {cid[:12]}", exc)
                continue
            added += self.feed(cid, parse_lines(raw))
        return added

    def feed(self, container: str, lines: Iterable[tuple[str, float, str]]) -> int:
        """Count one container's lines (each once, however often a poll reads it back)."""
        seen = self._seen.setdefault(container, {})
        newest = self._read_to.get(container, 0.0)
        added = 0
        for stamp, at, text in lines:
            if self._since is not None and at < self._since:
                continue
            key = (stamp, text)
            if key in seen:
                continue
            seen[key] = at
            newest = max(newest, at)
            reason = classify(text)
            if reason is not None:
                self.series.append(SERIES, self.clock.from_wall(at), 1.0, reason=reason)
                added += 1
        keep = newest - _OVERLAP_S - 1
        self._seen[container] = {k: at for k, at in seen.items() if at >= keep}
        self._read_to[container] = newest
        return added

    def count(self, start: float | None = None, end: float | None = None) -> int:
        """Connections PostgreSQL refused or ended in ``(start, end]`` (monotonic)."""
        return self.series.count(SERIES, start, end)
