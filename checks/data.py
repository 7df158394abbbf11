"""No data loss, proven row by row: the write ledger against PostgreSQL.

Every write the load generator got acknowledged (the ledger's ``acked``) must be in the database
as a row with the same id whose written fields hash to the ledger's checksum and, where the app
stores a checksum of its own (the profile's ``_checksum`` column), agrees with it too --
compared write by write, never by counts. The rows are read with the target's read-back
queries (its traffic profile's ``ledger.read_back``). Unacknowledged writes may or may not
exist; they are neither required nor counted as lost.

- :func:`no_acked_write_lost` -- phases 1-4: every acknowledged write is present and intact.
- :func:`loss_window` -- phase 5 restores a dump: writes acknowledged before the dump started
  and after the restore must be present; those acknowledged in between and now missing are the
  loss window, reported by id (exactly: each is looked up, none inferred).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from rollback_drill.checks.base import CheckResult
from rollback_drill.errors import TargetError
from rollback_drill.ledger import Ledger, WriteAck, content_checksum
from rollback_drill.profile import ReadBack

__all__ = ["StoredWrite", "loss_window", "no_acked_write_lost", "read_stored_writes"]

SHOWN_IDS = 20


@dataclass(frozen=True)
class StoredWrite:
    client_id: str
    kind: str
    fields: dict[str, Any]
    stored_checksum: str | None = None  # the app's own, where it stores one
    parent: str | None = None

    @property
    def checksum(self) -> str:
        """The checksum recomputed from the row's fields (not the stored column)."""
        return content_checksum(self.fields)


def read_stored_writes(dsn: str, read_back: Sequence[ReadBack]) -> dict[str, StoredWrite]:
    """Every row the read-back queries select, by the write's id (the first column)."""
    if not read_back:
        raise TargetError(
            "no data loss is not observable on this target: its traffic profile has no "
            "ledger.read_back query"
        )
    rows: dict[str, StoredWrite] = {}
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        for spec in read_back:
            for row in conn.execute(spec.sql.encode()):  # the target's own SQL, as written
                values = dict(zip(spec.columns, row, strict=True))
                fields = {k: v for k, v in values.items() if not k.startswith("_")}
                cid = str(row[0])
                fields[spec.columns[0]] = cid
                parent = values.get("_parent")
                rows[cid] = StoredWrite(
                    cid,
                    spec.write,
                    fields,
                    values.get("_checksum"),
                    None if parent is None else str(parent),
                )
    return rows


@dataclass(frozen=True)
class _Comparison:
    missing: list[WriteAck]
    corrupted: list[tuple[WriteAck, str]]  # (ack, why)
    present: int


def _compare(acks: Iterable[WriteAck], stored: dict[str, StoredWrite]) -> _Comparison:
    missing: list[WriteAck] = []
    corrupted: list[tuple[WriteAck, str]] = []
    present = 0
    for ack in acks:
        row = stored.get(ack.client_id)
        if row is None:
            missing.append(ack)
            continue
        want = ack.attempt.checksum
        why = []
        if row.kind != ack.attempt.kind:
            why.append(f"stored as a {row.kind}, written as a {ack.attempt.kind}")
        if row.checksum != want:
            why.append("row's fields hash differently from what was written")
        if row.stored_checksum is not None and row.stored_checksum != want:
            why.append("stored checksum column differs")
        if ack.attempt.parent is not None and row.parent != ack.attempt.parent:
            why.append(f"belongs to {row.parent}, not {ack.attempt.parent}")
        if why:
            corrupted.append((ack, "; ".join(why)))
        else:
            present += 1
    return _Comparison(missing, corrupted, present)


def _ids(acks: Iterable[WriteAck]) -> list[str]:
    return [a.client_id for a in acks]


def _corrupted(cmp: _Comparison) -> str:
    shown = ", ".join(f"{a.client_id} ({w})" for a, w in cmp.corrupted[:SHOWN_IDS])
    return f"; corrupted: {shown}{', ...' if len(cmp.corrupted) > SHOWN_IDS else ''}"


def no_acked_write_lost(
    dsn: str,
    ledger: Ledger,
    read_back: Sequence[ReadBack],
    *,
    name: str = "No data loss (acknowledged writes)",
) -> CheckResult:
    """Every acknowledged write is in the database, intact (phases 1-4)."""
    acked = ledger.acked()
    cmp = _compare(acked, read_stored_writes(dsn, read_back))
    ok = bool(acked) and not cmp.missing and not cmp.corrupted
    detail = (
        f"{cmp.present}/{len(acked)} acknowledged writes present and intact, "
        f"{len(ledger.unacknowledged())} unacknowledged not counted"
    )
    if not acked:
        detail = "no acknowledged write to check: the load wrote nothing"
    if cmp.missing:
        detail += f"; missing: {', '.join(_ids(cmp.missing)[:SHOWN_IDS])}"
    if cmp.corrupted:
        detail += _corrupted(cmp)
    return CheckResult(
        name,
        ok,
        {"acked": len(acked), "missing": len(cmp.missing), "corrupted": len(cmp.corrupted)},
        "every acknowledged write present with its checksum (and at least one write)",
        detail,
        {"missing_ids": _ids(cmp.missing), "corrupted_ids": _ids(a for a, _ in cmp.corrupted)},
    )


def loss_window(
    dsn: str,
    ledger: Ledger,
    read_back: Sequence[ReadBack],
    *,
    dump_started: float,
    restored: float,
    name: str = "Data loss limited to the backup window",
) -> CheckResult:
    """Phase 5: nothing acknowledged before ``dump_started`` or after ``restored`` is missing;
    the writes acknowledged in between that are missing are reported by id."""
    acked = ledger.acked()
    cmp = _compare(acked, read_stored_writes(dsn, read_back))
    before = [a for a in cmp.missing if a.acked < dump_started]
    after = [a for a in cmp.missing if a.acked >= restored]
    window = [a for a in cmp.missing if dump_started <= a.acked < restored]
    in_window = sum(dump_started <= a.acked < restored for a in acked)
    acked_before = sum(a.acked < dump_started for a in acked)
    ok = acked_before > 0 and not before and not after and not cmp.corrupted
    detail = (
        f"{acked_before} writes acknowledged before the dump: "
        f"{acked_before - len(before)} present; "
        f"{in_window} acknowledged between the dump and the restore: {len(window)} lost "
        f"({', '.join(_ids(window)[:SHOWN_IDS])}{', ...' if len(window) > SHOWN_IDS else ''})"
    )
    if before:
        detail += f"; LOST although acknowledged before the dump: {', '.join(_ids(before))}"
    if after:
        detail += f"; LOST although acknowledged after the restore: {', '.join(_ids(after))}"
    if cmp.corrupted:
        detail += _corrupted(cmp)
    return CheckResult(
        name,
        ok,
        {
            "acked_before_dump": acked_before,
            "lost_before_dump": len(before),
            "acked_in_window": in_window,
            "lost_in_window": len(window),
            "lost_after_restore": len(after),
            "corrupted": len(cmp.corrupted),
        },
        "nothing acknowledged before the dump or after the restore is missing",
        detail,
        {
            "lost_ids": _ids(window),
            "lost_before_dump_ids": _ids(before),
            "lost_after_restore_ids": _ids(after),
        },
    )
