"""The drill journal: every step of a drill as a timestamped event.

A fault applied, a trigger fired, a phase run, a check: each is an event with wall-clock and
monotonic time; a *step* is an event pair with duration, status and the exception if it failed
(after chaoslib's ``execute_activity``). Reports are views of the journal. Secrets registered
with :meth:`Journal.redact` never reach the file.

Every event is also logged as one line (:mod:`rollback_drill.progress`) with the time elapsed
since the drill began (:meth:`Journal.begin`), redacted the same way: the drill's progress as it
happens. The journal knows which steps are running (:meth:`Journal.open_steps`), so a drill
that hangs can name the step it hung in.
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

from rollback_drill import progress

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

    def describe(self, now: float | None = None) -> str:
        """``kind name`` and how long it has been running, e.g. ``rollback phase1.stop (41 s)``."""
        running = (time.monotonic() if now is None else now) - self.started
        return f"{self.kind} {self.name} (running for {running:.0f} s)"


class Scrubber:
    """The secrets registered with :meth:`redact`, replaced by ``***`` in any text (and in the
    strings of dicts, lists and tuples) passed to :meth:`scrub`: the journal's, and the
    readiness review's (:class:`~rollback_drill.readiness.Review`)."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def redact(self, *secrets: str) -> None:
        self._secrets.update(s for s in secrets if s)

    def scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            # the longest first: a secret inside another (a password in a URL) hides no part
            for secret in sorted(self._secrets, key=len, reverse=True):
                value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {k: self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        return value


class Journal(Scrubber):
    def __init__(self, path: Path | None = None) -> None:
        super().__init__()
        self.path = path
        self.events: list[Event] = []
        self._lock = threading.Lock()
        self._open: list[Step] = []
        self.t0 = time.monotonic()  # the progress lines' elapsed time counts from here
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def begin(self, drill: str) -> Event:
        """A drill begins: the progress lines' elapsed time counts from now."""
        self.t0 = time.monotonic()
        return self.event("drill", drill, phase="start")

    def event(self, kind: str, name: str, **data: Any) -> Event:
        ev = Event(kind, self.scrub(name), time.time(), time.monotonic(), self.scrub(data))
        with self._lock:
            self.events.append(ev)
            if self.path is not None:
                with self.path.open("a") as fh:
                    fh.write(json.dumps(ev.as_dict(), default=str) + "\n")
        self._log(ev)
        return ev

    def _log(self, ev: Event) -> None:
        level = progress.level_of(ev.kind, ev.data)
        if not progress.log.isEnabledFor(level):
            return
        try:
            line = self.scrub(progress.describe(ev.kind, ev.name, ev.data))
        except Exception as exc:  # a line that cannot be drawn must not fail the drill
            line = f"{ev.kind} {ev.name} (not shown: {type(exc).__name__})"
        progress.log.log(level, "[%6.1f s] %s", ev.mono - self.t0, line)

    def open_steps(self) -> list[Step]:
        """The steps running now, outermost first. Lock-free: a signal handler (the drill's
        time limit) may ask while the interrupted code holds the lock."""
        return list(self._open)

    def current_step(self) -> Step | None:
        """The innermost step running now (the one a hung drill is stuck in), or None."""
        steps = self.open_steps()
        return steps[-1] if steps else None

    def last_failed_step(self, since: float = 0.0) -> Event | None:
        """The end event of the last step that failed (monotonic time ``since`` or later)."""
        with self._lock:
            for ev in reversed(self.events):
                if ev.mono < since:
                    return None
                if ev.data.get("phase") == "end" and ev.data.get("status") == "failed":
                    return ev
        return None

    @contextlib.contextmanager
    def step(self, kind: str, name: str, **data: Any) -> Iterator[Step]:
        step = Step(kind, name, dict(data))
        start = self.event(kind, name, phase="start", **data)
        step.started = start.mono
        with self._lock:
            self._open.append(step)
        try:
            yield step
        except BaseException as exc:
            self._close(step)
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
        self._close(step)
        step.status = "ok"
        step.duration_s = time.monotonic() - start.mono
        self.event(
            kind, name, phase="end", status="ok", duration_s=round(step.duration_s, 3), **step.data
        )

    def _close(self, step: Step) -> None:
        with self._lock:
            self._open[:] = [s for s in self._open if s is not step]

    def of_kind(self, kind: str) -> list[Event]:
        with self._lock:
            return [e for e in self.events if e.kind == kind]
