"""The plan's Phase 1 "Stop any ongoing deployment" and Phase 5 "Emergency Fallback (If Above
Fails)", drilled for real.

- **abort**: the next release's guarded deployment runs in the background (a real ``docker
  compose`` build and rolling update through ``deploy.py``); as soon as its first new app
  container exists, a rollback 1→3 starts. Phase 1 must stop the deployment -- its compose
  processes and the containers it created -- and take its lock; the deployment ends with
  ``DeploymentStopped``; no container of the half-deployed release runs afterwards; the phases
  complete within budget and the validation checklist is green.
- **fallback**: the previous release no longer builds -- its image copies a wheelhouse from the
  build host (a directory in its build context that git does not track), and the build host
  is cleaned up after the deployment -- so Phase 3's ``docker compose build`` fails for real
  (``COPY failed``; no registry is asked). The executor falls back to Phase 5 (backup
  restored, the last stable release built and started), the result names the failed phase and
  step, and the data-loss window (writes acknowledged after the backup's dump and lost by the
  restore) is reported in the JUnit properties and the HTML report; the checklist is green
  afterwards.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from rollback_drill.checks.base import CheckResult, require
from rollback_drill.defects import DefectLog
from rollback_drill.deploy import DeploymentStopped, guarded_deploy
from rollback_drill.deployments import DeploymentRecord, record_path, token_processes
from rollback_drill.drill import DrillRun
from rollback_drill.lock import DeploymentLock
from rollback_drill.report import DrillSummary
from rollback_drill.wait import wait_for

from ._abort_support import fallback_checks, rollback_with_ledger, verify_after_fallback
from ._support import RecordProperty, verify_after_rollback

pytestmark = [pytest.mark.full, pytest.mark.nightly]

ABORT_REASON = "drill: roll back the deployment of the next release while it still rolls"
FALLBACK_REASON = "drill: code rollback of the next release (its previous release no longer builds)"


class Background:
    """``guarded_deploy`` in a thread: what it returned or raised."""

    def __init__(self, run: DrillRun, release: str) -> None:
        self.outcome: Any = None
        self.thread = threading.Thread(target=self._go, args=(run, release), daemon=True)

    def _go(self, run: DrillRun, release: str) -> None:
        try:
            self.outcome = guarded_deploy(run.stack, release)
        except BaseException as exc:  # kept for the drill to assert on
            self.outcome = exc

    def start(self) -> Background:
        self.thread.start()
        return self


def app_containers(run: DrillRun) -> dict[str, Any]:
    s = run.stack.target.services
    return {
        c.id: c
        for service in (s.wsgi, s.asgi)
        for c in run.stack.containers(service)
        if c.labels.get("com.docker.compose.oneoff") != "True"
    }


@pytest.mark.anystack
def test_rollback_stops_a_deployment_still_rolling(
    drill_run: DrillRun,
    plan_defects: DefectLog,
    report_dir: Path,
    drill_record: DrillSummary,
    record_property: RecordProperty,
) -> None:
    run, stack = drill_run, drill_run.stack
    rel = stack.target.releases
    run.capture_baseline()
    run.backup()
    before = app_containers(run)
    run.mark(f"deploy {rel.next} (background)")
    deployment = Background(run, rel.next).start()

    def first_new() -> list[Any]:
        return [c for cid, c in app_containers(run).items() if cid not in before]

    new = wait_for(
        first_new,
        bool,
        timeout_s=600,
        interval_s=0.2,
        what=f"the first new app container of the {rel.next} deployment",
        hint="the build or the migrations of the release did not finish",
    )
    new_image = new[0].image.id
    run.mark("first new container", container=new[0].name, image=new_image[:19])
    assert deployment.thread.is_alive(), f"the deployment ended already: {deployment.outcome!r}"
    record = DeploymentRecord.load(record_path(stack.workspace.state_dir))
    assert record is not None and record.status == "running", record

    result, rolled_back_at = rollback_with_ledger(
        run,
        (1, 3),
        ABORT_REASON,
        defects=plan_defects,
        sink_path=report_dir / "announcements" / "test_rollback_stops_a_deployment.txt",
        holder=f"abort drill {drill_record.nodeid}",
        record=drill_record,
        record_property=record_property,
    )
    deployment.thread.join(30)
    after = DeploymentRecord.load(record_path(stack.workspace.state_dir))
    leftovers = [
        f"{c.name} ({c.status})"
        for cid, c in app_containers(run).items()
        if c.image.id == new_image and c.status == "running" and cid not in before
    ]
    created = [c.name for cid, c in app_containers(run).items() if cid in {n.id for n in new}]
    record_property("stopped", " | ".join(result.stopped))
    checks = [
        CheckResult(
            "Phase 1 stopped the ongoing deployment",
            isinstance(deployment.outcome, DeploymentStopped)
            and not deployment.thread.is_alive()
            and after is not None
            and after.status == "stopped"
            and any("stopped deployment of" in s for s in result.stopped),
            f"{deployment.outcome!r}; record {after.status if after else None}; "
            f"{' | '.join(result.stopped)}",
            "DeploymentStopped, record 'stopped', journaled",
        ),
        CheckResult(
            "No process of the deployment left",
            not token_processes(record.token),
            token_processes(record.token),
            "none",
        ),
        CheckResult(
            "No container of the half-deployed release runs",
            not leftovers and not created,
            leftovers + created,
            f"none running image {new_image[:19]}",
        ),
        CheckResult(
            "Phases ran in order, all ok",
            result.ok and [p.phase for p in result.phases] == [1, 3] and not result.fallback,
            result.label,
            "1→3",
        ),
        *[
            CheckResult(
                f"Phase {p.phase} ({p.title}) within the plan's budget",
                p.within_budget,
                round(p.duration_s, 2),
                f"<= {p.budget_s:.0f} s",
            )
            for p in result.phases
        ],
    ]
    checks += verify_after_rollback(
        run,
        result,
        result.sequence,
        rolled_back_at,
        f"deployment of {rel.next} rolled back while it still rolled",
        drill_record,
        record_property,
    )
    require(*checks)
    DeploymentLock.for_stack(stack).force_release()


def test_failed_code_rollback_falls_back_to_phase_5(
    drill_run: DrillRun,
    plan_defects: DefectLog,
    report_dir: Path,
    drill_record: DrillSummary,
    record_property: RecordProperty,
) -> None:
    run, stack = drill_run, drill_run.stack
    rel, ws = stack.target.releases, stack.workspace
    dockerfile = ws.root / "app" / "Dockerfile"
    wheels = dockerfile.parent / f"wheels-{ws.run_id}"  # on the build host, not in git
    wheels.mkdir()
    (wheels / "README").write_text("wheels the previous release's image copies\n")
    # the previous release as it was deployed: its image copies a wheelhouse from the build
    # host (untracked); built and recorded by the backup procedure
    text = dockerfile.read_text()
    marker = "WORKDIR /app\n"
    assert marker in text, f"{dockerfile}: no {marker.strip()!r} line to copy the wheels after"
    copy = f"COPY {wheels.name}/ /opt/wheels/\n"
    dockerfile.write_text(text.replace(marker, marker + copy, 1))
    message = f"{rel.previous}: its image copies the build host's {wheels.name}/"
    ws.git("commit", "-q", "-m", message, "--", str(dockerfile.relative_to(ws.root)))
    stack.compose.check("build", stack.target.services.wsgi, timeout=600)
    run.mark("previous release copies the build host's wheelhouse", commit=ws.head()[:12])
    run.capture_baseline()
    backups = run.backup()
    run.load.wait_for_writes(10, after=backups.dump_finished)  # type: ignore[union-attr]
    run.deploy(rel.next)
    # the build host's wheelhouse is cleaned up: the previous release no longer builds
    shutil.rmtree(wheels)
    run.mark("wheelhouse removed from the build host", path=wheels.name)
    run.load.wait_for_writes(10, after=run.mark("writes after the deployment"))  # type: ignore[union-attr]
    result, rolled_back_at = rollback_with_ledger(
        run,
        (1, 3),
        FALLBACK_REASON,
        defects=plan_defects,
        sink_path=report_dir / "announcements" / "test_failed_code_rollback.txt",
        holder=f"fallback drill {drill_record.nodeid}",
        record=drill_record,
        record_property=record_property,
    )
    checks = fallback_checks(result, 3, "build")
    loss = result.data_loss
    record_property("data_loss", loss.describe() if loss is not None else "not measured")
    checks += [
        CheckResult(
            f"Phase 5 deployed the last stable release ({rel.stable_tag})",
            ws.head() == ws.git("rev-parse", f"{rel.stable_tag}^{{commit}}"),
            ws.head()[:12],
            rel.stable_tag,
        ),
        *[
            CheckResult(
                f"Phase {p.phase} ({p.title}) within the plan's budget",
                p.within_budget or p.status == "failed",
                round(p.duration_s, 2),
                f"<= {p.budget_s:.0f} s",
            )
            for p in result.phases
        ],
    ]
    checks += verify_after_fallback(
        run,
        result,
        rolled_back_at,
        f"code rollback of {rel.next}: {result.failure.describe() if result.failure else '?'}",
        drill_record,
        record_property,
    )
    require(*checks)
    DeploymentLock.for_stack(stack).force_release()
