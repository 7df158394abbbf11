"""The rollback announcement: the plan's "Rollback Announcement Template", filled, and sent.

The plan's Phase 1 pipes "ROLLBACK IN PROGRESS" into ``slack-notify``, a command that does not
exist (plan defect ``slack-notify-missing``); the suite sends the plan's own announcement
template instead -- reason, times, impact, and the roles of the plan's Responsibility Matrix --
to a configured sink: a file (appended) or an HTTP webhook on a loopback address only.

The template's timeline is the plan's: "Expected completion: [TIME + 5 minutes]" (the start
plus the policy's success criterion) and "Status updates: Every 5 minutes" (the policy's
interval, time-scaled like the drill): :class:`StatusUpdates` sends one at each interval while
the rollback runs, and the completion message says how it ended -- complete; complete through
the Phase 5 emergency fallback (the phase that failed, why, and the data-loss window); failed at
which phase and step, with what was rolled back by then; or interrupted.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from rollback_drill.client import require_loopback
from rollback_drill.errors import RollbackError

__all__ = [
    "SUBJECT",
    "TEMPLATE",
    "Announcement",
    "AnnouncementSink",
    "FileSink",
    "StatusUpdates",
    "WebhookSink",
    "sink_from",
]

SEPARATOR = "-" * 72 + "\n"
SUBJECT = "[URGENT] Production Rollback - Hybrid Migration"

# The plan's template, word for word; its [PLACEHOLDERS] are the fields.
TEMPLATE = """\
Subject: {subject}

Team,

We are executing a rollback of the hybrid WSGI+ASGI deployment due to:
{reason}

Timeline:
- Rollback started: {started}
- Expected completion: {expected}
- Status updates: Every {every}

Impact:
- {impact}

Actions:
- {executing} is executing rollback
- {monitoring} is monitoring metrics
- {communications} is handling user communications

Will update when rollback is complete.

{author}
"""

COMPLETION = """\
Subject: {subject} - complete

Team,

The rollback of the hybrid WSGI+ASGI deployment is complete.

- Rollback started: {started}
- Rollback completed: {completed} ({duration:.0f} s; phases {phases})
- Result: {result}

{author}
"""

FALLBACK = """\
Subject: {subject} - complete via Phase 5 emergency fallback

Team,

The rollback of the hybrid WSGI+ASGI deployment is complete, through the plan's Phase 5
emergency fallback: a phase of the rollback failed, and Phase 5 restored the pre-deployment
backup and the last stable release.

- Rollback started: {started}
- Rollback completed: {completed} ({duration:.0f} s; phases {phases})
- Failed: {failed}
- Data loss (writes after the backup are gone): {loss}
- Result: {result}

{author}
"""

INTERRUPTED = """\
Subject: {subject} - INTERRUPTED

Team,

The rollback of the hybrid WSGI+ASGI deployment was INTERRUPTED before it finished: the stack
may be half rolled back; manual check needed.

- Rollback started: {started}
- Rollback stopped: {completed} ({duration:.0f} s; phases {phases})
- Rolled back: {done}
- Interrupted by: {result}

{author}
"""

FAILED = """\
Subject: {subject} - FAILED

Team,

The rollback of the hybrid WSGI+ASGI deployment FAILED: manual intervention needed.

- Rollback started: {started}
- Rollback stopped: {completed} ({duration:.0f} s; phases {phases})
- Rolled back: {done}
- Failed: {result}

{author}
"""

UPDATE = """\
Subject: {subject} - status update {number}

Team,

Status update {number} on the rollback of the hybrid WSGI+ASGI deployment ({clock}):

- Rollback started: {started} ({elapsed:.0f} s ago)
- Expected completion: {expected}
- Now: {now}

Next update in {every}, or when the rollback is complete.

{author}
"""


def _clock(wall: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(wall))


def _duration(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds:g} seconds"


@dataclass(frozen=True)
class Announcement:
    """The template's fields; roles default to the plan's Rollback Responsibility Matrix."""

    reason: str
    started: float  # epoch seconds
    expected_duration_s: float  # the plan's "[TIME + 5 minutes]": the policy's success criterion
    impact: str
    status_interval_s: float = 300.0  # the policy's status-update interval, time-scaled
    time_scale: float = 1.0  # the drill's compression, said beside a scaled interval
    executing: str = "DevOps Engineer"
    monitoring: str = "SRE"
    communications: str = "Product Manager"
    author: str = "rollback-drill executor, for the DevOps Engineer"

    @property
    def subject(self) -> str:
        return SUBJECT

    @property
    def expected(self) -> str:
        """The template's "[TIME + 5 minutes]", filled."""
        return (
            f"{_clock(self.started + self.expected_duration_s)} "
            f"(start + {_duration(self.expected_duration_s)})"
        )

    @property
    def every(self) -> str:
        """The status updates' interval, with the plan's own when the drill compresses time."""
        every = _duration(round(self.status_interval_s, 3))
        if self.time_scale == 1:
            return every
        plan = _duration(round(self.status_interval_s * self.time_scale, 3))
        return f"{every} (the plan's {plan}, time-scaled {self.time_scale:g}x)"

    def render(self) -> str:
        return TEMPLATE.format(
            subject=SUBJECT,
            reason=self.reason,
            started=_clock(self.started),
            expected=self.expected,
            every=self.every,
            impact=self.impact,
            executing=self.executing,
            monitoring=self.monitoring,
            communications=self.communications,
            author=self.author,
        )

    def _ended(self, template: str, end: float, **fields: str) -> str:
        """A message of the rollback's end: ``template`` with its start, end and duration."""
        return template.format(
            subject=SUBJECT,
            started=_clock(self.started),
            completed=_clock(end),
            duration=end - self.started,
            author=self.author,
            **fields,
        )

    def completion(self, completed: float, phases: str, result: str) -> str:
        return self._ended(COMPLETION, completed, phases=phases, result=result)

    def fallback_completion(
        self, completed: float, phases: str, failed: str, loss: str, result: str
    ) -> str:
        """The message when a phase failed and the Phase 5 emergency fallback rolled back:
        the failed phase and why, and the data-loss window Phase 5 cost."""
        return self._ended(
            FALLBACK, completed, phases=phases, failed=failed, loss=loss, result=result
        )

    def interruption(self, stopped: float, phases: str, done: str, why: str) -> str:
        """The message when the rollback was stopped from outside (not by a failing step)."""
        return self._ended(INTERRUPTED, stopped, phases=phases, done=done, result=why)

    def failure(self, stopped: float, phases: str, done: str, why: str) -> str:
        """The message when the rollback failed: what was rolled back, and the failure."""
        return self._ended(FAILED, stopped, phases=phases, done=done, result=why)

    def update(self, number: int, now: float, state: str) -> str:
        return UPDATE.format(
            subject=SUBJECT,
            number=number,
            clock=_clock(now),
            started=_clock(self.started),
            elapsed=now - self.started,
            expected=self.expected,
            now=state,
            every=self.every,
            author=self.author,
        )


class StatusUpdates:
    """The template's "Status updates: Every 5 minutes": while the rollback runs, one update
    each ``announcement().status_interval_s`` after the announcement was sent, saying what
    ``state()`` says (the phase running, the phases done). A context manager: it stops (and
    sends nothing more) when the block ends, however it ends. A sink that fails is journaled
    by ``on_error`` and the updates go on."""

    def __init__(
        self,
        sink: AnnouncementSink,
        announcement: Callable[[], Announcement | None],
        state: Callable[[], str],
        on_sent: Callable[[int, str], object] = lambda number, where: None,
        on_error: Callable[[str], object] = lambda error: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sink = sink
        self.announcement = announcement
        self.state = state
        self.on_sent = on_sent
        self.on_error = on_error
        self.clock = clock
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status-updates", daemon=True)

    def __enter__(self) -> StatusUpdates:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """No update after this returns (idempotent)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            ann = self.announcement()
            if ann is None:  # not announced yet (Phase 1 announces)
                self._stop.wait(0.2)
                continue
            due = ann.started + (self.sent + 1) * ann.status_interval_s
            if self._stop.wait(max(0.0, due - self.clock())):
                return
            self.sent += 1
            text = ann.update(self.sent, self.clock(), self.state())
            try:
                where = self.sink.send(f"{ann.subject} - status update {self.sent}", text)
            except RollbackError as exc:
                self.on_error(str(exc))
                continue
            self.on_sent(self.sent, where)


class AnnouncementSink(Protocol):
    def send(self, subject: str, text: str) -> str:
        """Deliver; return where it went. Raise :class:`RollbackError` when it cannot."""
        ...


class FileSink:
    """Appends each message to a file (a team channel stand-in the drill report can show)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def send(self, subject: str, text: str) -> str:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(text.rstrip("\n") + "\n" + SEPARATOR)
        except OSError as exc:
            raise RollbackError(f"announcement to {self.path} failed: {exc}") from None
        return f"file {self.path}"


class WebhookSink:
    """POSTs ``{"subject", "text"}`` as JSON to a loopback webhook; any non-2xx is an error."""

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        require_loopback(url)
        self.url = url
        self.timeout_s = timeout_s

    def send(self, subject: str, text: str) -> str:
        try:
            resp = httpx.post(
                self.url,
                content=json.dumps({"subject": subject, "text": text}),
                headers={"Content-Type": "application/json"},
                timeout=self.timeout_s,
            )
        except httpx.HTTPError as exc:
            raise RollbackError(f"announcement webhook {self.url} failed: {exc}") from None
        if not 200 <= resp.status_code < 300:
            raise RollbackError(f"announcement webhook {self.url} answered {resp.status_code}")
        return f"webhook {self.url} ({resp.status_code})"


def sink_from(spec: str) -> AnnouncementSink:
    """``http://127.0.0.1:PORT/path`` → :class:`WebhookSink`; anything else is a file path."""
    if spec.startswith(("http://", "https://")):
        return WebhookSink(spec)
    return FileSink(Path(spec))
