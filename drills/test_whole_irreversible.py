"""A whole drill of a release with an irreversible migration: Phase 4 cannot bring the data
back, the executor falls back to Phase 5, and the data-loss window is reported.

The release: ``hybrid-irreversible-migration`` is the hybrid release plus ``chat_session``'s
0012, which drops ``chatsession.updated_at`` with its values (Django unapplies it without
complaint: the reverse re-creates the column, filled with the time of the rollback). By itself
the release is healthy -- no trigger fires, nothing to roll back. The drill deploys it with a
defect of the kind the plan guards against: the same release with its new CRUD middleware
failing 25 % of the CRUD requests (``hybrid-irreversible-flaky-crud``: the WSGI defect overlay
built on top of it), so the error rate passes 10 % and the monitor decides an immediate rollback.

What the phases are is the product's choice, from the decision and the deployment's state:
the files it changed (code), the migrations applied past the targets (``django_migrations``),
and whether the previous code runs on the new schema -- proved, as the chooser demands, by
``check-migrations`` on a copy of the data (a throwaway stack of its own, run first): it does
not (the previous code reads and writes ``updated_at``), so the chooser prescribes 1→4→3.

Phase 4 unapplies 0012 and the 0011s with the release's own code; ``django_migrations`` is back
at the targets -- and the data check (every table and column the rollback re-created against
the pre-deployment backup, row by row) finds ``updated_at`` not restored: Phase 4 fails, the
executor falls back to Phase 5 (the backup restored, the last stable release built and
started). The drill then checks the failure (phase 4, the column named), the fallback, the
data-loss window in acknowledged writes (none lost outside it), the validation checklist and
the success criterion's clock.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rollback_drill.checks.base import CheckResult, require
from rollback_drill.client import AppClient
from rollback_drill.decisions import Decision
from rollback_drill.defects import DefectLog
from rollback_drill.drill import DrillRun
from rollback_drill.faults.base import Effect
from rollback_drill.faults.release import FaultyRelease, build_release
from rollback_drill.fixtures.options import setting
from rollback_drill.lock import DeploymentLock
from rollback_drill.migrations_check import check_migrations
from rollback_drill.report import DrillSummary
from rollback_drill.rollback.choose import choose_phases, deployment_state

from ._abort_support import fallback_checks, rollback_with_ledger, verify_after_fallback
from ._support import RecordProperty

IRREVERSIBLE = "hybrid-irreversible-migration"
FLAKY = "hybrid-irreversible-flaky-crud"
SHARE = 0.25
CRUD_PATHS = ("/api/models/", "/api/sessions/")
TRIGGER = "error_rate"
PRESCRIBED = (1, 4, 3)  # the plan for a code defect whose schema the previous code cannot run

pytestmark = [
    pytest.mark.full,
    pytest.mark.nightly,
    pytest.mark.needs_releases(IRREVERSIBLE, FLAKY),
]


def flaky_irreversible(run: DrillRun) -> FaultyRelease:
    """The irreversible release with ``SHARE`` of its CRUD requests failing (500)."""
    stack = run.stack
    rel = stack.target.releases
    build_release(
        stack.workspace,
        IRREVERSIBLE,
        stack.target.overlay_dir(IRREVERSIBLE),
        base=rel.next,
        marker_file=rel.marker_file,
    )

    def observe(fault: FaultyRelease) -> Effect:
        user = stack.workspace.user
        seen: list[int] = []
        with AppClient(stack.base_url, timeout=10.0) as client:
            client.login(user.username, user.password)
            for _ in range(12):
                r = client.http.get("/api/models/")
                seen.append(r.status_code)
                if r.status_code == 500 and r.headers.get("x-release") == FLAKY:
                    return Effect(True, 500, f"500s answered by {FLAKY}", f"after {len(seen)}")
        return Effect(False, seen, f"a 500 from {FLAKY} on /api/models/")

    return FaultyRelease(
        stack,
        FLAKY,
        config={"fail": {"kind": "error", "share": SHARE, "paths": list(CRUD_PATHS)}},
        observer=observe,
        deploy=run.deploy,
        good_release=IRREVERSIBLE,
        describe=f"{IRREVERSIBLE} + error on {SHARE:.0%} of {', '.join(CRUD_PATHS)}",
    )


def test_irreversible_release_falls_back_from_phase_4_to_phase_5(
    drill_run: DrillRun,
    plan_defects: DefectLog,
    report_dir: Path,
    drill_record: DrillSummary,
    record_property: RecordProperty,
    pytestconfig: pytest.Config,
) -> None:
    run, stack = drill_run, drill_run.stack
    rel = stack.target.releases

    # the proof the chooser needs: does the previous code run on the release's schema?
    started = time.monotonic()
    trip = check_migrations(
        setting(pytestconfig, "drill_target"), previous=rel.previous, nxt=IRREVERSIBLE
    )
    record_property("check_migrations_s", round(time.monotonic() - started, 1))
    record_property("check_migrations_phase3_safe", str(trip.phase3_safe))
    record_property(
        "check_migrations_irreversible",
        "; ".join(f"{m.label}: {m.reason}" for m in trip.irreversible),
    )
    assert trip.failed is None, f"check-migrations did not complete: {trip.failed}"
    assert trip.phase3_safe is not None, "check-migrations did not try the previous code"

    run.capture_baseline()
    run.backup()
    fault = flaky_irreversible(run)
    fault.apply()  # deployed through the harness (guarded); the monitor starts
    run.mark("fault live", fault=fault.name)
    fault.verify_effect(timeout_s=60)
    monitor = run.start_monitor()
    decision: Decision = monitor.wait_for_decision(
        lambda d: d.is_rollback() and d.trigger_id == TRIGGER,
        timeout_s=run.policy.scale(600) + 30,
        what=f"a rollback decision of {TRIGGER}",
    )
    run.mark(f"decision {TRIGGER}")
    record_property("trigger", TRIGGER)
    record_property("decision", f"{decision.kind}:{decision.action}")
    record_property("measured_value", decision.value)
    record_property("threshold", decision.threshold)
    live = fault.live_at or run.source.not_before or decision.time
    record_property("time_to_detect_s", round(decision.time - live, 2))

    state = deployment_state(stack, rel.previous, previous_runs_on_schema=trip.phase3_safe)
    chosen = choose_phases(decision, state, stack.target)
    record_property("deployment_changed", state.describe())
    record_property("phases_chosen", "->".join(map(str, chosen.phases)))
    record_property("phases_reasons", "; ".join(chosen.reasons))
    assert chosen.phases == PRESCRIBED, (
        f"the chooser picked {chosen.describe()}; the plan prescribes "
        f"{'->'.join(map(str, PRESCRIBED))} for this release"
    )

    result, rolled_back_at = rollback_with_ledger(
        run,
        chosen.phases,
        decision.message,
        defects=plan_defects,
        sink_path=report_dir / "announcements" / "test_irreversible_release.txt",
        holder=f"whole drill {drill_record.nodeid}",
        record=drill_record,
        record_property=record_property,
    )
    fault.abandon("replaced by the rollback")
    loss = result.data_loss
    record_property("data_loss", loss.describe() if loss is not None else "not measured")
    checks = fallback_checks(result, 4, "data not restored")
    checks.append(
        CheckResult(
            "Phase 4 named the data it could not restore",
            result.failure is not None
            and "chat_session_chatsession.updated_at" in result.failure.error,
            result.failure.error if result.failure is not None else None,
            "chat_session_chatsession.updated_at: rows not restored",
        )
    )
    checks += verify_after_fallback(
        run,
        result,
        rolled_back_at,
        f"{fault.params.get('defect', fault.name)} -> {decision.message}",
        drill_record,
        record_property,
    )
    require(*checks)
    DeploymentLock.for_stack(stack).force_release()
