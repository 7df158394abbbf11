"""The drill journal: every step of a drill as a timestamped event.

A fault applied, a trigger fired, a phase run, a check: each is an event with wall-clock and
monotonic time; a *step* is an event pair with duration, status and the exception if it failed
(after chaoslib's ``execute_activity``). Reports are views of the journal. Secrets registered
with :meth:`Journal.redact` never reach the file.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REDACTED = "***"


@dataclass
class Event:
    kind: str
    name: str
    wall: float
    mono: float
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "wall": self.wall,
            "mono": self.mono,
            **self.data,
        }


@dataclass
class Step:
    """What a running step knows; a ``with journal.step(...)`` body may add data to it."""

    kind: str
    name: str
    data: dict[str, Any]
    started: float = 0.0
    duration_s: float = 0.0
    status: str = "running"


class Journal:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.events: list[Event] = []
        self._secrets: set[str] = set()
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def redact(self, *secrets: str) -> None:
        self._secrets.update(s for s in secrets if s)

    def scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._secrets:
                value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {k: self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        return value

    def event(self, kind: str, name: str, **data: Any) -> Event:
        ev = Event(kind, name, time.time(), time.monotonic(), self.scrub(data))
        with self._lock:
            self.events.append(ev)
            if self.path is not None:
                with self.path.open("a") as fh:
                    fh.write(json.dumps(ev.as_dict(), default=str) + "\n")
        return ev

    @contextlib.contextmanager
    def step(self, kind: str, name: str, **data: Any) -> Iterator[Step]:
        step = Step(kind, name, dict(data))
        start = self.event(kind, name, phase="start", **data)
        step.started = start.mono
        try:
            yield step
        except BaseException as exc:
            step.status = "failed"
            step.duration_s = time.monotonic() - start.mono
            self.event(
                kind,
                name,
                phase="end",
                status="failed",
                duration_s=round(step.duration_s, 3),
                error=f"{type(exc).__name__}: {exc}",
                **step.data,
            )
            raise
        step.status = "ok"
        step.duration_s = time.monotonic() - start.mono
        self.event(
            kind, name, phase="end", status="ok", duration_s=round(step.duration_s, 3), **step.data
        )

    def of_kind(self, kind: str) -> list[Event]:
        with self._lock:
            return [e for e in self.events if e.kind == kind]
