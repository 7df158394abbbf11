"""The rollback announcement: the plan's "Rollback Announcement Template", filled, and sent.

The plan's Phase 1 pipes "ROLLBACK IN PROGRESS" into ``slack-notify``, a command that does not
exist (plan defect ``slack-notify-missing``); the suite sends the plan's own announcement
template instead -- reason, times, impact, and the roles of the plan's Responsibility Matrix --
to a configured sink: a file (appended) or an HTTP webhook on a loopback address only.
"""

from __future__ import annotations

import json
import time
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
- Status updates: Every 5 minutes

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


def _clock(wall: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(wall))


@dataclass(frozen=True)
class Announcement:
    """The template's fields; roles default to the plan's Rollback Responsibility Matrix."""

    reason: str
    started: float  # epoch seconds
    expected_duration_s: float  # the budget of the phases to run
    impact: str
    executing: str = "DevOps Engineer"
    monitoring: str = "SRE"
    communications: str = "Product Manager"
    author: str = "rollback-drill executor, for the DevOps Engineer"

    @property
    def subject(self) -> str:
        return SUBJECT

    def render(self) -> str:
        minutes = self.expected_duration_s / 60
        return TEMPLATE.format(
            subject=SUBJECT,
            reason=self.reason,
            started=_clock(self.started),
            expected=f"{_clock(self.started + self.expected_duration_s)} "
            f"(start + {minutes:g} minutes)",
            impact=self.impact,
            executing=self.executing,
            monitoring=self.monitoring,
            communications=self.communications,
            author=self.author,
        )

    def completion(self, completed: float, phases: str, result: str) -> str:
        return COMPLETION.format(
            subject=SUBJECT,
            started=_clock(self.started),
            completed=_clock(completed),
            duration=completed - self.started,
            phases=phases,
            result=result,
            author=self.author,
        )


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
