"""Phase 4's data check: did rolling the migrations back bring the data back?

The plan verifies Phase 4 with ``\\dt`` (tables only) and warns "Only use if migrations are
reversible and tested"; a migration that dropped a column unapplies "successfully" -- Django
re-creates the column, filled with a default -- and the data it held is gone. Compared here,
row by row, on real data: the live database right before and right after the migrations were
rolled back, and the pre-deployment backup (restored into a scratch database of the stack's
PostgreSQL, dropped afterwards). A table or column the rollback re-created (the deployment had
dropped it) must hold, for every row of the backup, the backup's value; a table or column of
the previous release the rollback dropped is lost. The per-row, per-column digests and the
comparison are ``check-migrations``' (:func:`rollback_drill.migrations_check.step_losses`).

Values that the load changed while Phase 4 ran are not counted (only the tables and columns
whose schema the rollback changed are compared): a write is not a loss.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from rollback_drill.errors import RollbackError

if TYPE_CHECKING:
    from rollback_drill.migrations_check import Loss, TableState
    from rollback_drill.rollback.steps import PhaseRun

__all__ = ["SCHEMA_LOSSES", "backup_snapshot", "live_snapshot", "unrestored"]

Snapshot = Mapping[str, "TableState"]
SCHEMA_LOSSES = ("re-created", "dropped")
"""The losses a schema change makes (``Loss.how`` contains one of these)."""


def live_snapshot(run: PhaseRun, step: str) -> Snapshot:
    """Every table of the live database, per row and column (a recorded step)."""
    from rollback_drill.migrations_check import take_snapshot

    snap: dict[str, TableState] = {}

    def take() -> str:
        snap.update(take_snapshot(run.stack.postgres_dsn()))
        return f"{len(snap)} tables, {sum(t.count for t in snap.values())} rows"

    run.action(step, "per-row, per-column digests of every table (live database)", take)
    return snap


def backup_snapshot(run: PhaseRun, step: str) -> Snapshot:
    """The pre-deployment backup's tables: its dump restored into a scratch database."""
    from rollback_drill.migrations_check import take_snapshot

    stack, t = run.stack, run.stack.target
    db = stack.workspace.database
    scratch = f"rbd_phase4_{uuid.uuid4().hex[:8]}"
    dump = run.ctx.backup_set().dump
    run.exec(f"{step}_createdb", t.services.postgres, "createdb", "-U", db.user, scratch)
    try:
        run.exec(
            f"{step}_restore",
            t.services.postgres,
            "pg_restore",
            "-U",
            db.user,
            "-d",
            scratch,
            "--no-owner",
            "--exit-on-error",
            dump,
            timeout=600,
        )
        parts = urlsplit(stack.postgres_dsn())
        dsn = urlunsplit(parts._replace(path=f"/{scratch}"))
        snap: dict[str, TableState] = {}

        def take() -> str:
            snap.update(take_snapshot(dsn))
            return f"{len(snap)} tables, {sum(t.count for t in snap.values())} rows"

        run.action(step, f"per-row, per-column digests of {dump} (scratch database)", take)
        return snap
    finally:
        run.exec(
            f"{step}_dropdb", t.services.postgres, "dropdb", "-U", db.user, scratch, check=False
        )


def unrestored(backup: Snapshot, before: Snapshot, after: Snapshot) -> list[Loss]:
    """What the migrations' rollback did not bring back (see the module docstring)."""
    from rollback_drill.migrations_check import step_losses

    losses, _ = step_losses(backup, before, after)
    return [loss for loss in losses if any(word in loss.how for word in SCHEMA_LOSSES)]


def verify_restored(run: PhaseRun, before: Snapshot) -> None:
    """Raise :class:`RollbackError` naming the data the rollback did not restore."""
    after = live_snapshot(run, "data_after")
    backup = backup_snapshot(run, "data_backup")
    lost: list[Loss] = []

    def compare() -> str:
        lost.extend(unrestored(backup, before, after))
        if lost:
            raise RollbackError(
                "data not restored by the migrations' rollback (irreversible): "
                + "; ".join(loss.describe() for loss in lost)
            )
        return "every table and column the rollback re-created holds the backup's values"

    run.action("verify_data", "compare re-created tables and columns with the backup", compare)
