"""The write ledger: every write the load sent, and which ones the app acknowledged.

"No data loss" is proven against this ledger: every *acknowledged* write (HTTP 201/200 with
the app's checksum) must later be found in PostgreSQL with the same checksum. A write that
failed, timed out or never got an answer is *unacknowledged*: it may or may not exist, so it is
kept apart and never counted as lost.

The checksum is :func:`content_checksum`: the hex SHA-256 of :func:`canonical_json` of the
written fields -- exactly the JSON body sent (the target's traffic profile says which request
writes and which field is its id; the reference app computes the same bytes in
``compose/app/chat_session/checksum.py``); the data-integrity checks reuse these two functions on
the database's rows.

Saved and loaded as JSON lines, one entry a line: ``{"state": "acked" | "unacked", ...}``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


def canonical_json(fields: Mapping[str, object]) -> str:
    """The canonical form: keys sorted, no whitespace, non-ASCII ``\\u``-escaped -- exactly
    ``json.dumps(fields, sort_keys=True, separators=(",", ":"))``, as the app's
    ``chat_session/checksum.py`` does."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"))


def content_checksum(fields: Mapping[str, object]) -> str:
    """Hex SHA-256 of the canonical JSON (UTF-8) of the written fields."""
    return hashlib.sha256(canonical_json(fields).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class WriteAttempt:
    """A write as sent. ``parent`` is the session's client_id of a message."""

    client_id: str
    kind: str  # the profile's write name ("session", "note", ...)
    fields: Mapping[str, Any]
    checksum: str
    sent: float
    parent: str | None = None


@dataclass(frozen=True, slots=True)
class WriteAck:
    """An acknowledged write: the app answered 200/201 at ``acked`` (epoch seconds)."""

    attempt: WriteAttempt
    acked: float
    status: int
    server_checksum: str | None

    @property
    def client_id(self) -> str:
        return self.attempt.client_id

    @property
    def checksum_matches(self) -> bool:
        """The app's checksum equals ours (False also when the app sent none)."""
        return self.server_checksum == self.attempt.checksum


@dataclass(frozen=True, slots=True)
class UnackedWrite:
    """A write with no acknowledgement: it may or may not exist."""

    attempt: WriteAttempt
    ended: float
    reason: str
    status: int | None = None


class Ledger:
    """Thread-safe, complete (never trimmed) record of writes and their acknowledgements."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, WriteAttempt] = {}
        self._acked: list[WriteAck] = []
        self._unacked: list[UnackedWrite] = []

    # -- recording ---------------------------------------------------------------------------

    def attempt(
        self,
        kind: str,
        fields: Mapping[str, Any],
        *,
        sent: float,
        parent: str | None = None,
        id_field: str = "client_id",
    ) -> WriteAttempt:
        """Register a write about to be sent (``fields[id_field]`` is its id)."""
        entry = WriteAttempt(
            client_id=str(fields[id_field]),
            kind=kind,
            fields=dict(fields),
            checksum=content_checksum(fields),
            sent=sent,
            parent=parent,
        )
        with self._lock:
            self._pending[entry.client_id] = entry
        return entry

    def acknowledge(
        self, client_id: str, *, at: float, status: int, server_checksum: str | None
    ) -> WriteAck:
        with self._lock:
            ack = WriteAck(self._pending.pop(client_id), at, status, server_checksum)
            self._acked.append(ack)
        return ack

    def fail(
        self, client_id: str, *, at: float, reason: str, status: int | None = None
    ) -> UnackedWrite:
        with self._lock:
            entry = UnackedWrite(self._pending.pop(client_id), at, reason, status)
            self._unacked.append(entry)
        return entry

    # -- queries -----------------------------------------------------------------------------

    def acked(self) -> list[WriteAck]:
        with self._lock:
            return list(self._acked)

    def unacknowledged(self) -> list[UnackedWrite]:
        """Failed or unanswered writes, plus those still in flight (reason ``pending``)."""
        with self._lock:
            pending = [UnackedWrite(a, a.sent, "pending") for a in self._pending.values()]
            return [*self._unacked, *pending]

    def acked_before(self, t: float) -> list[WriteAck]:
        with self._lock:
            return [a for a in self._acked if a.acked < t]

    def acked_after(self, t: float) -> list[WriteAck]:
        with self._lock:
            return [a for a in self._acked if a.acked >= t]

    def checksum_mismatches(self) -> list[WriteAck]:
        """Acknowledged writes whose app checksum differs from ours (corruption on write)."""
        with self._lock:
            return [a for a in self._acked if not a.checksum_matches]

    def __len__(self) -> int:
        with self._lock:
            return len(self._acked) + len(self._unacked) + len(self._pending)

    # -- persistence -------------------------------------------------------------------------

    def save(self, path: Path | str) -> None:
        """Write every entry as JSON lines (pending writes are saved as unacknowledged)."""
        with open(path, "w", encoding="utf-8") as handle:
            for ack in self.acked():
                handle.write(_dump("acked", ack) + "\n")
            for unacked in self.unacknowledged():
                handle.write(_dump("unacked", unacked) + "\n")

    @classmethod
    def load(cls, path: Path | str) -> Ledger:
        """Read a saved ledger; a malformed line raises ValueError naming file and line."""
        ledger = cls()
        for entry in _read(path):
            if isinstance(entry, WriteAck):
                ledger._acked.append(entry)
            else:
                ledger._unacked.append(entry)
        return ledger


def _dump(state: str, entry: WriteAck | UnackedWrite) -> str:
    data = asdict(entry)
    data["state"] = state
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _read(path: Path | str) -> Iterator[WriteAck | UnackedWrite]:
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield _entry(json.loads(line))
                except (KeyError, TypeError, ValueError) as exc:
                    raise ValueError(f"{path}:{number}: {exc}") from None


def _entry(data: dict[str, Any]) -> WriteAck | UnackedWrite:
    state = data.pop("state", None)
    if state not in ("acked", "unacked"):
        raise ValueError(f"unknown ledger state {state!r}")
    raw = data.pop("attempt")
    attempt = WriteAttempt(**raw)
    if state == "acked":
        return WriteAck(attempt=attempt, **data)
    return UnackedWrite(attempt=attempt, **data)
