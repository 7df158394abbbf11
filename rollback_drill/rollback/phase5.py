"""Phase 5, Emergency Fallback (15 minutes): stop everything, restore the dump, deploy the last
stable release, full health check.

As written the plan cannot work: it runs ``docker-compose exec postgres pg_restore`` right after
``docker-compose down`` -- there is no container left to exec into (plan defect
``phase5-exec-after-down``) -- and restores ``/backups/pre-migration.dump``, a file its backup
procedure never writes (``phase5-dump-missing``; the procedure writes plain SQL that pg_restore
cannot read anyway). Both are shown by running the plan's command. The executor starts
PostgreSQL alone, recreates the database and restores the verified custom-format dump named in
the backup manifest, then checks out ``tags/<stable tag>``, rebuilds and starts everything.
"""

from __future__ import annotations

from rollback_drill.defects import evidence_of
from rollback_drill.rollback.health import full_health_check
from rollback_drill.rollback.phase1 import announce, take_lock
from rollback_drill.rollback.steps import PhaseRun

__all__ = ["PLAN_DUMP", "emergency_restore"]

PLAN_DUMP = "pre-migration.dump"  # the file the plan's Phase 5 restores


def emergency_restore(run: PhaseRun) -> None:
    stack, ctx = run.stack, run.ctx
    t = stack.target
    s, db = t.services, stack.workspace.database
    backups = ctx.backup_set()
    take_lock(run)  # when Phase 5 runs alone it is the whole rollback
    announce(run)
    # 1. Stop all application containers
    run.compose("down", "down")
    stack.forget_ports()
    plan_dump = f"{t.paths.backups_dir.rstrip('/')}/{PLAN_DUMP}"
    restore = ["pg_restore", "-U", db.user, "-d", db.name]
    if ctx.probe_plan:
        literal = run.exec("restore_plan", s.postgres, *restore, plan_dump, check=False)
        if not literal.ok:
            run.defect(
                "phase5-exec-after-down",
                "`docker-compose exec postgres` right after `docker-compose down`: there is no "
                f"container to exec into ({literal.tail(1)})",
                evidence_of(literal),
            )
    # corrected: PostgreSQL alone, then restore into a fresh database
    run.compose("up_postgres", "up", "-d", "--wait", s.postgres)
    if ctx.probe_plan:
        listed = run.exec(
            "plan_dump_check", s.postgres, "pg_restore", "--list", plan_dump, check=False
        )
        if not listed.ok:
            ls = run.exec(
                "backups_listing", s.postgres, "ls", "-1", t.paths.backups_dir, check=False
            )
            run.defect(
                "phase5-dump-missing",
                f"{plan_dump} does not exist: the backup procedure never writes it "
                f"({listed.tail(1)}); the backups volume holds: "
                f"{', '.join(ls.stdout.split()) or 'nothing'}",
                evidence_of(listed, ls),
            )
    run.exec("drop_database", s.postgres, "dropdb", "-U", db.user, "--if-exists", db.name)
    run.exec("create_database", s.postgres, "createdb", "-U", db.user, "-O", db.user, db.name)
    run.exec(
        "restore_dump",
        s.postgres,
        *restore,
        "--exit-on-error",
        "--single-transaction",
        backups.dump,
        timeout=600,
    )
    # 3. Deploy last known good version
    run.host(
        "checkout_stable", ["git", "checkout", "-q", "--detach", f"tags/{t.releases.stable_tag}"]
    )
    release = stack.current_release()
    # 4. Rebuild and start
    run.compose("build", "build", timeout=900)
    run.compose("up", "up", "-d")
    stack.forget_ports()
    # the roles the stable release has: a release before the hybrid one may have no ASGI role
    defined = run.compose("services", "config", "--services", timeout=60).stdout.split()
    services = [r for r in (s.nginx, s.wsgi, s.asgi, s.postgres, s.redis) if r in defined]

    def healthy() -> str:
        stack.wait_healthy(services, timeout_s=180)
        return "all services healthy"

    run.action("wait_healthy", "poll docker compose ps until every service is healthy", healthy)
    # 5. Run health checks
    run.action(
        "full_health_check",
        "full health check (scripts/full-health-check.sh's checks)",
        lambda: full_health_check(stack, release),
    )
