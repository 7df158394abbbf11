"""The rollback plan's phases, executed for real and timed: 1→2, 1→3, 1→3→4, 1→4→3 and 5.

Each drill: a fresh pre-hybrid stack, the backup procedure, a guarded hybrid deployment, write
load in the background (the write ledger), the phases, then the proof: routing back on WSGI,
every acknowledged write in PostgreSQL row by row (phase 5: the loss window exact, by id),
each phase within the plan's budget, and the deployment lock still refusing deployments. The
plan defects the executor observes on the way are listed in the run's terminal summary.
"""

from __future__ import annotations

import time

import psycopg
import pytest

from rollback_drill.checks.base import CheckResult, require
from rollback_drill.checks.data import loss_window, no_acked_write_lost
from rollback_drill.checks.success import phases_within_budget
from rollback_drill.deploy import guarded_deploy
from rollback_drill.errors import LockHeld
from rollback_drill.fixtures.rollback import MIN_WRITES, RollbackDrill, assert_served
from rollback_drill.lock import DeploymentLock
from rollback_drill.stack import Stack

REASON = "drill: error rate > 10 % on streaming endpoints after the hybrid deployment"


def beyond_target(stack: Stack) -> list[str]:
    """Migrations applied past the target's rollback points."""
    t = stack.target
    with psycopg.connect(stack.postgres_dsn(), connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT app, name FROM django_migrations WHERE app = ANY(%s)",
            (list(t.migration_rollback),),
        ).fetchall()
    return sorted(f"{app}.{name}" for app, name in rows if name[:4] > t.migration_rollback[app][:4])


def lock_refuses_deployments(stack: Stack) -> CheckResult:
    try:
        guarded_deploy(stack, stack.target.releases.next)
    except LockHeld as exc:
        return CheckResult("Deployment lock prevents new deployments", True, str(exc), "LockHeld")
    return CheckResult("Deployment lock prevents new deployments", False, "deployed", "LockHeld")


@pytest.mark.parametrize(
    "phases",
    [
        pytest.param((1, 2), marks=[pytest.mark.full, pytest.mark.nightly], id="1-2"),
        pytest.param((1, 3), marks=[pytest.mark.full, pytest.mark.nightly], id="1-3"),
        pytest.param((1, 3, 4), marks=[pytest.mark.full, pytest.mark.nightly], id="1-3-4"),
        pytest.param((1, 4, 3), marks=[pytest.mark.nightly], id="1-4-3"),
    ],
)
def test_rollback_phases(phase_drill: RollbackDrill, phases: tuple[int, ...]) -> None:
    d, stack = phase_drill, phase_drill.stack
    rel = stack.target.releases
    d.backup()
    d.deploy_hybrid()
    assert beyond_target(stack), "the hybrid release applied no migration to roll back"
    load = d.start_load()
    load.wait_for_writes(MIN_WRITES)

    result = d.rollback(phases, REASON)

    # the app answers from WSGI: the previous code after phase 3, the new code after phase 2
    release = rel.previous if 3 in phases else rel.next
    assert_served(stack, "/api/stream/", "wsgi", release)
    load.wait_for_writes(MIN_WRITES, after=result.finished)  # writes work after the rollback
    d.stop_loads()
    checks = [d.no_data_loss(), *phases_within_budget(result), lock_refuses_deployments(stack)]
    if 4 in phases:
        left = beyond_target(stack)
        checks.append(CheckResult("Migrations rolled back", not left, left, "none past 0010"))
    require(*checks)
    DeploymentLock.for_stack(stack).force_release()


@pytest.mark.full
@pytest.mark.nightly
def test_rollback_phase_5_emergency(phase_drill: RollbackDrill) -> None:
    d, stack = phase_drill, phase_drill.stack
    rel = stack.target.releases
    before = d.start_load()  # writing before the backup: the dump is taken under load
    before.wait_for_writes(MIN_WRITES)
    backups = d.backup()
    before.wait_for_writes(MIN_WRITES, after=backups.dump_finished)
    d.deploy_hybrid()
    before.wait_for_writes(MIN_WRITES // 2, after=time.time())

    result = d.rollback((5,), REASON)

    # the stack was rebuilt: nginx listens on a new port, so the first load can no longer reach
    # it; a second load proves writes after the restore are kept
    before.stop()
    assert_served(stack, stack.target.paths.health, "wsgi", rel.previous)
    after = d.start_load()
    after.wait_for_writes(MIN_WRITES)
    d.stop_loads()
    dsn = stack.postgres_dsn()
    window = loss_window(
        dsn,
        before.ledger,
        stack.target.read_back,
        dump_started=backups.dump_started,
        restored=result.finished,
    )
    d.record_property("lost_writes", window.measured["lost_in_window"])
    d.record_property("lost_write_ids", ",".join(window.data["lost_ids"]))
    checks = [
        window,
        no_acked_write_lost(
            dsn, after.ledger, stack.target.read_back, name="No data loss after the restore"
        ),
        CheckResult("Migrations as in the backup", not beyond_target(stack), "", "none past 0010"),
        *phases_within_budget(result),
        lock_refuses_deployments(stack),
    ]
    require(*checks)
    DeploymentLock.for_stack(stack).force_release()
