"""Phase 3, Full Rollback -- code and config (5 minutes).

1. the previous commit: the plan's ``PREVIOUS_COMMIT=`` lost its ``$(...)`` and is empty, so its
   ``git checkout $PREVIOUS_COMMIT`` changes nothing (plan defect ``previous-commit-empty``,
   shown by running exactly that); the executor uses the commit the backup procedure recorded;
2. check it out; 3. rebuild and restart ``backend-wsgi`` (awaited healthy); 4. stop
   ``backend-asgi``; 5. restore nginx (with ``nginx -t`` first, which the plan's step omits);
6. smoke test.
"""

from __future__ import annotations

from pathlib import Path

from rollback_drill.defects import evidence_of
from rollback_drill.errors import RollbackError
from rollback_drill.rollback.health import smoke_test
from rollback_drill.rollback.nginx import restore_nginx_conf
from rollback_drill.rollback.steps import PhaseRun

__all__ = ["code_rollback"]

PLAN_STEP_1 = "PREVIOUS_COMMIT=\ngit checkout $PREVIOUS_COMMIT\ngit rev-parse HEAD"


def code_rollback(run: PhaseRun) -> None:
    stack, ctx = run.stack, run.ctx
    t, ws = stack.target, stack.workspace
    s = t.services
    backups = ctx.backup_set()
    if ctx.probe_plan:
        head = ws.head()
        probe = run.host("previous_commit_plan", ["bash", "-c", PLAN_STEP_1], check=False)
        after = probe.stdout.strip().splitlines()[-1:] or [""]
        if probe.ok and after[0] == head and head != backups.commit:
            run.defect(
                "previous-commit-empty",
                f"PREVIOUS_COMMIT is empty, so `git checkout` changed nothing: HEAD stayed at "
                f"{head[:12]} (the release being rolled back), not {backups.commit[:12]}",
                evidence_of(probe),
            )

    def previous() -> str:
        recorded = Path(backups.commit_file).read_text().strip()
        if not recorded:
            raise RollbackError(f"{backups.commit_file} is empty")
        return recorded

    commit = run.action("previous_commit", f"cat {backups.commit_file}", previous)
    run.host("checkout", ["git", "checkout", "-q", "--detach", commit])
    release = stack.current_release()
    run.compose("build_wsgi", "build", s.wsgi, timeout=600)
    run.compose("up_wsgi", "up", "-d", s.wsgi)
    stack.forget_ports()

    def healthy() -> str:
        stack.wait_healthy([s.wsgi], timeout_s=120)
        return f"{s.wsgi} healthy"

    run.action("wait_wsgi", f"poll docker compose ps until {s.wsgi} is healthy", healthy)
    run.compose("stop_asgi", "stop", s.asgi)
    restore_nginx_conf(run, t.paths.nginx_conf_backup)
    run.action(
        "smoke_test",
        "smoke test (scripts/smoke-test.sh's checks)",
        lambda: smoke_test(stack, release),
    )
    ctx.code_rolled_back = True
