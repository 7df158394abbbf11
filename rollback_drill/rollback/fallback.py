"""Phase 5 as the plan's "Emergency Fallback (If Above Fails)": what failed, and what the
fallback loses.

When a phase of a sequence fails, the executor runs Phase 5: the pre-deployment backup
restored and the last stable release deployed. :class:`PhaseFailure` names the phase and step
that failed and why. Phase 5 loses every write made after the backup's ``pg_dump`` took its
snapshot -- the **data-loss window** (:class:`DataLossWindow`), counted two ways:

- with the write ledger of the load (``RollbackContext.ledger``, a drill's): the writes the app
  *acknowledged* between the dump's start and the end of Phase 5 that are missing afterwards,
  by id (:func:`rollback_drill.checks.data.loss_window`); acknowledged writes lost outside the
  window are named too (they must be none);
- without one (a team's own rollback): the rows the target's ``ledger.read_back`` queries
  select before Phase 5 and no longer after it.

Either is measured, never inferred from the clock; a count that cannot be taken (PostgreSQL
not reachable before the fallback, no read-back query) says why instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rollback_drill.checks.data import loss_window, read_stored_writes
from rollback_drill.ledger import Ledger
from rollback_drill.stack import Stack

__all__ = ["DataLossWindow", "PhaseFailure", "StoredBefore", "measure_loss", "stored_before"]

SHOWN_IDS = 20


@dataclass(frozen=True)
class PhaseFailure:
    phase: int
    title: str
    step: str  # the failing step's name ("" when the phase failed outside a step)
    error: str

    def describe(self) -> str:
        if self.error.startswith(f"phase {self.phase} "):  # a step's error names both already
            return self.error
        where = f", step {self.step}" if self.step else ""
        return f"phase {self.phase} ({self.title}){where} failed: {self.error}"


@dataclass(frozen=True)
class DataLossWindow:
    since: float  # epoch seconds: the backup's pg_dump started
    until: float  # epoch seconds: Phase 5 finished
    source: str  # "ledger" (acknowledged writes) or "database" (rows) or "not measured"
    in_window: int  # writes acknowledged (rows stored) in the window
    lost: int  # of those, missing after Phase 5
    lost_ids: tuple[str, ...] = ()
    lost_outside: int = 0  # acknowledged before the dump or after Phase 5, yet missing
    note: str = ""

    @property
    def window_s(self) -> float:
        return max(0.0, self.until - self.since)

    def describe(self) -> str:
        if self.source == "not measured":
            return f"data-loss window {self.window_s:.0f} s: not measured ({self.note})"
        what = "acknowledged writes" if self.source == "ledger" else "rows"
        shown = ", ".join(self.lost_ids[:SHOWN_IDS])
        more = ", ..." if len(self.lost_ids) > SHOWN_IDS else ""
        text = (
            f"data-loss window {self.window_s:.0f} s (since the backup's dump): "
            f"{self.lost} of {self.in_window} {what} in it lost"
            + (f" ({shown}{more})" if shown else "")
        )
        if self.lost_outside:
            text += f"; {self.lost_outside} lost OUTSIDE the window"
        return text + (f"; {self.note}" if self.note else "")

    def properties(self) -> dict[str, float | str]:
        return {
            "data_loss_window_s": round(self.window_s, 2),
            "data_loss_source": self.source,
            "data_loss_in_window": self.in_window,
            "data_loss_lost": self.lost,
            "data_loss_lost_outside_window": self.lost_outside,
            "data_loss_lost_ids": ",".join(self.lost_ids[:SHOWN_IDS]),
        }


@dataclass
class StoredBefore:
    """The rows the read-back queries selected right before Phase 5 (or why not)."""

    ids: set[str] = field(default_factory=set)
    error: str = ""


def stored_before(stack: Stack) -> StoredBefore:
    try:
        rows = read_stored_writes(stack.postgres_dsn(), stack.target.read_back)
    except Exception as exc:  # a count, not a step: said why, never read as "no loss"
        return StoredBefore(error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    return StoredBefore(set(rows))


def measure_loss(
    stack: Stack,
    *,
    since: float,
    until: float,
    before: StoredBefore | None,
    ledger: Ledger | None,
) -> DataLossWindow:
    """The data-loss window of a Phase 5 that restored a dump started at ``since``."""
    try:
        dsn = stack.postgres_dsn()
        if ledger is not None:
            check = loss_window(
                dsn, ledger, stack.target.read_back, dump_started=since, restored=until
            )
            m = check.measured
            return DataLossWindow(
                since,
                until,
                "ledger",
                int(m["acked_in_window"]),
                int(m["lost_in_window"]),
                tuple(check.data["lost_ids"]),
                int(m["lost_before_dump"]) + int(m["lost_after_restore"]),
                "" if check.passed else check.detail,
            )
        if before is None or before.error:
            why = before.error if before is not None else "no count before Phase 5"
            return DataLossWindow(since, until, "not measured", 0, 0, note=why)
        after = set(read_stored_writes(dsn, stack.target.read_back))
    except Exception as exc:  # reported as not measured, never as no loss
        note = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        return DataLossWindow(since, until, "not measured", 0, 0, note=note)
    lost = sorted(before.ids - after)
    return DataLossWindow(
        since,
        until,
        "database",
        len(before.ids),
        len(lost),
        tuple(lost),
        note="rows stored before Phase 5 and missing after it (no write ledger given)",
    )
