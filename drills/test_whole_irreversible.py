"""A whole drill of a release with an irreversible migration, on any target that names one
(``releases.irreversible``): Phase 4 cannot bring the data back, the executor falls back to
Phase 5, and the data-loss window is reported.

The release: the reference target's ``hybrid-irreversible-migration`` is the hybrid release
plus ``chat_session``'s 0012, which drops ``chatsession.updated_at`` with its values; the notes
example's ``v2-irreversible`` is v2 plus ``notes``' 0003, which drops ``note.created_at``.
Django unapplies either without complaint: the reverse re-creates the column, filled with the
time of the rollback. By itself the release is healthy -- no trigger fires, nothing to roll
back. The drill deploys it with a defect of the kind the plan guards against, pushing the error
rate past its threshold (an immediate rollback): where the target ships the reference app's
WSGI defect overlay built on it (``hybrid-irreversible-flaky-crud``), the release's new CRUD
middleware fails the policy's share of the CRUD requests (``drills.levels``:
``crud_code_error_rate``); on any other target, where the app cannot help, the WSGI
role's containers are paused (an infrastructure fault, as ``test_infrastructure.py``'s
error-rate row) and resumed once the monitor has decided, before the rollback starts.

What the phases are is the product's choice, from the decision and the deployment's state:
the files it changed (code), the migrations applied past the targets (``django_migrations``),
and whether the previous code runs on the new schema -- proved, as the chooser demands, by
``check-migrations`` on a copy of the data (a throwaway stack of its own, run before the
drill's stack starts): it does not (the previous code reads and writes the dropped column), so
the chooser prescribes 1→4→3.

Phase 4 unapplies the release's migrations with its own code; ``django_migrations`` is back at
the targets -- and the data check (every table and column the rollback re-created against the
pre-deployment backup, row by row) finds the column ``check-migrations`` named not restored:
Phase 4 fails, the executor falls back to Phase 5 (the backup restored, the last stable release
built and started). The drill then checks the failure (phase 4, the column named), the
fallback, the data-loss window in acknowledged writes (none lost outside it), the validation
checklist and the success criterion's clock.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rollback_drill.checks.base import CheckResult, require
from rollback_drill.client import AppClient
from rollback_drill.defects import DefectLog
from rollback_drill.drill import DrillRun
from rollback_drill.errors import NotOnThisTarget
from rollback_drill.faults import Fault, PauseContainers
from rollback_drill.faults.base import Effect
from rollback_drill.faults.release import FaultyRelease, build_release
from rollback_drill.fixtures.options import setting
from rollback_drill.lock import DeploymentLock
from rollback_drill.migrations_check import RoundTrip, check_migrations
from rollback_drill.policy import Policy
from rollback_drill.report import DrillSummary
from rollback_drill.rollback.choose import choose_phases, deployment_state
from rollback_drill.rollback.data_restored import SCHEMA_LOSSES
from rollback_drill.target import Target

from ._abort_support import fallback_checks, rollback_with_ledger, verify_after_fallback
from ._support import RecordProperty, detect, origin_of

FLAKY = "hybrid-irreversible-flaky-crud"  # the reference app's defect overlay on the release
LEVEL = "crud_code_error_rate"  # drills.levels: the share of CRUD requests failing
CRUD_PATHS = ("/api/models/", "/api/sessions/")
TRIGGER = "error_rate"
PRESCRIBED = (1, 4, 3)  # the plan for a code defect whose schema the previous code cannot run

pytestmark = [pytest.mark.full, pytest.mark.nightly]


def irreversible_release(target: Target) -> str:
    """The release the target names irreversible (``releases.irreversible``), or not here."""
    name = target.releases.irreversible
    if name is None:
        raise NotOnThisTarget(
            "names no release with an irreversible migration (releases.irreversible)"
        )
    return name


def flaky_crud(run: DrillRun, release: str, share: float) -> FaultyRelease:
    """The reference app's ``release`` with ``share`` of its CRUD requests failing (500)."""
    stack = run.stack

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
        config={"fail": {"kind": "error", "share": share, "paths": list(CRUD_PATHS)}},
        observer=observe,
        deploy=run.deploy,
        good_release=release,
        describe=f"{release} + error on {share:.0%} of {', '.join(CRUD_PATHS)}",
    )


def error_rate_defect(
    run: DrillRun, release: str, policy: Policy, record_property: RecordProperty
) -> Fault:
    """``release`` deployed with a defect past the error-rate threshold, live (see the module
    docstring: the app's own defect where the target ships it, else the WSGI role paused)."""
    if FLAKY in run.stack.target.releases.overlays:
        share = policy.level(LEVEL)
        record_property("aimed_level", share)
        fault: Fault = flaky_crud(run, release, share)
        fault.apply()  # deployed through the harness (guarded); the monitor starts
    else:
        run.deploy(release)  # guarded; the monitor starts
        fault = PauseContainers(run.stack, run.stack.target.services.wsgi)
        fault.apply()
    record_property("fault", repr(fault))
    run.mark("fault live", fault=fault.name)
    fault.verify_effect(timeout_s=60)
    return fault


def prove_irreversible(
    pytestconfig: pytest.Config, target: Target, release: str, record_property: RecordProperty
) -> RoundTrip:
    """``check-migrations`` of the release on a throwaway stack: what the chooser needs (does
    the previous code run on its schema?) and the columns it loses going back."""
    started = time.monotonic()
    trip = check_migrations(
        setting(pytestconfig, "drill_target"), previous=target.releases.previous, nxt=release
    )
    record_property("check_migrations_s", round(time.monotonic() - started, 1))
    record_property("check_migrations_phase3_safe", str(trip.phase3_safe))
    record_property(
        "check_migrations_irreversible",
        "; ".join(f"{m.label}: {m.reason}" for m in trip.irreversible),
    )
    assert trip.failed is None, f"check-migrations did not complete: {trip.failed}"
    assert trip.phase3_safe is not None, "check-migrations did not try the previous code"
    assert trip.irreversible, (
        f"check-migrations proved every migration of {release} reversible: "
        "releases.irreversible names a reversible release"
    )
    return trip


def test_irreversible_release_falls_back_from_phase_4_to_phase_5(
    drill_target: Target,
    drill_policy: Policy,
    request: pytest.FixtureRequest,
    record_property: RecordProperty,
    pytestconfig: pytest.Config,
) -> None:
    release = irreversible_release(drill_target)
    record_property("release", release)
    # the proof the chooser needs, before the drill's own stack starts
    trip = prove_irreversible(pytestconfig, drill_target, release, record_property)
    lost = sorted(  # the columns the backward step re-created empty (Phase 4's data check)
        {
            f"{loss.table}.{loss.column}"
            for m in trip.irreversible
            for loss in m.losses
            if loss.column and any(word in loss.how for word in SCHEMA_LOSSES)
        }
    )
    record_property("irreversible_columns", ", ".join(lost))

    run: DrillRun = request.getfixturevalue("drill_run")
    plan_defects: DefectLog = request.getfixturevalue("plan_defects")
    report_dir: Path = request.getfixturevalue("report_dir")
    drill_record: DrillSummary = request.getfixturevalue("drill_record")
    stack, rel = run.stack, run.stack.target.releases

    run.capture_baseline()
    run.backup()
    build_release(
        stack.workspace,
        release,
        stack.target.overlay_dir(release),
        base=rel.next,
        marker_file=rel.marker_file,
    )
    fault = error_rate_defect(run, release, drill_policy, record_property)
    try:
        decision = detect(
            run,
            TRIGGER,
            origin=origin_of(run, fault),
            budget_s=drill_policy.detect_budget_s(TRIGGER),
            record_property=record_property,
        ).decision
    finally:
        if isinstance(fault, PauseContainers):
            fault.revert()  # the infrastructure repaired: the rollback does not race it
            run.mark("fault reverted")

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
    if isinstance(fault, FaultyRelease):
        fault.abandon("replaced by the rollback")
    loss = result.data_loss
    record_property("data_loss", loss.describe() if loss is not None else "not measured")
    checks = fallback_checks(result, 4, "data not restored")
    error = result.failure.error if result.failure is not None else ""
    checks.append(
        CheckResult(
            "Phase 4 named the data it could not restore (the columns check-migrations named)",
            bool(lost) and all(f"{column}:" in error for column in lost),
            error or None,
            "; ".join(f"{column}: rows not restored" for column in lost) or "(none named)",
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
