"""Phase 4, Database Rollback (10 minutes): each app of the target's ``migration_rollback``
back to its migration, the schema verified, ``backend-wsgi`` restarted.

Rolling a migration back needs the code that *has* it. After Phase 3 the previous code is
checked out and its image no longer contains the new release's migrations: the plan's ``migrate
ai_model 0010`` then answers "No migrations to apply" and changes nothing (plan defect
``phase4-after-phase3-noop``, shown by running it and reading ``django_migrations``). The
executor then runs the rollback from the new release's image that Phase 3 left alone
(``backend-asgi``: started, used, stopped again; nginx no longer routes to it) -- or, in the
order 1→4→3, from ``backend-wsgi`` before its code is rolled back.

The plan verifies with ``\\dt``, which lists tables only: a rollback that drops columns and
indexes leaves it unchanged (plan defect ``phase4-verify-dt``). The executor verifies that
``django_migrations`` holds nothing past the targets, that every table and column the rollback
re-created holds the pre-deployment backup's values row by row (a column dropped with its data
comes back filled with a default: :mod:`rollback_drill.rollback.data_restored`), and that the
schema (``pg_dump --schema-only``) equals the pre-deployment backup's.
"""

from __future__ import annotations

import difflib

from rollback_drill.defects import evidence_of
from rollback_drill.errors import RollbackError
from rollback_drill.rollback.choose import migrations_query, past_rollback_targets
from rollback_drill.rollback.data_restored import live_snapshot, verify_restored
from rollback_drill.rollback.steps import PhaseRun
from rollback_drill.wait import wait_for

__all__ = ["applied_beyond", "database_rollback", "schema_diff"]

_SCHEMA_NOISE = ("--", "\\restrict", "\\unrestrict")


def database_rollback(run: PhaseRun) -> None:
    stack, ctx = run.stack, run.ctx
    t = stack.target
    s, manage, apps = t.services, t.manage, t.migration_rollback
    show = run.exec("showmigrations", s.wsgi, *manage, "showmigrations", *apps)
    to_undo = applied_beyond(run, "applied_migrations")
    if not to_undo:
        run.action(
            "nothing_to_roll_back",
            "django_migrations",
            lambda: "no migration past " + ", ".join(f"{a} {m}" for a, m in apps.items()),
        )
        return
    dt_before = schema_before = None
    if ctx.probe_plan:
        dt_before = run.exec("dt_before", s.postgres, *_psql(run), "-c", "\\dt")
        schema_before = schema_diff(run, "schema_before")
    data_before = live_snapshot(run, "data_before")  # what the data check compares
    runner = s.wsgi
    if not all(name in show.stdout for _, name in to_undo):
        if ctx.probe_plan:
            _probe_migrate_as_written(run, to_undo)
        runner = _new_release_runner(run, to_undo)
    for app, target in apps.items():
        run.exec(f"migrate_{app}", runner, *manage, "migrate", app, target)
    if runner != s.wsgi:
        run.compose("stop_migration_runner", "stop", runner)
    # 3. verify: the plan's \dt as written, then what shows the rollback
    dt_after = run.exec("verify_dt", s.postgres, *_psql(run), "-c", "\\dt")
    left = applied_beyond(run, "verify_migrations")
    if left:
        raise RollbackError(f"phase 4: still applied after the rollback: {_names(left)}")
    verify_restored(run, data_before)  # the data, row by row: an irreversible drop shows here
    diff = schema_diff(run, "verify_schema")
    if diff:
        raise RollbackError(
            f"phase 4: schema differs from the pre-deployment backup's: {' | '.join(diff[:6])}"
        )
    if dt_before is not None and dt_before.stdout == dt_after.stdout and schema_before:
        run.defect(
            "phase4-verify-dt",
            f"`\\dt` printed the same {len(dt_after.stdout.splitlines())} lines before and after "
            f"rolling back {_names(to_undo)}, though the schema changed: it cannot show whether "
            "the rollback happened",
            evidence_of(
                dt_after,
                "schema before the rollback vs the backup's: " + " | ".join(schema_before[:6]),
                "schema after the rollback vs the backup's: identical",
            ),
        )
    # 4. restart
    run.compose("restart_wsgi", "restart", s.wsgi)
    stack.forget_ports()

    def healthy() -> str:
        stack.wait_healthy([s.wsgi], timeout_s=120)
        return f"{s.wsgi} healthy"

    run.action("wait_wsgi", f"poll docker compose ps until {s.wsgi} is healthy", healthy)


def _psql(run: PhaseRun) -> list[str]:
    db = run.stack.workspace.database
    return ["psql", "-U", db.user, "-d", db.name]


def _names(rows: list[tuple[str, str]]) -> str:
    return ", ".join(f"{app}.{name}" for app, name in rows)


def applied_beyond(run: PhaseRun, step: str) -> list[tuple[str, str]]:
    """``(app, migration)`` rows of ``django_migrations`` past each app's rollback target."""
    t = run.stack.target
    sql = migrations_query(t)
    res = run.exec(step, t.services.postgres, *_psql(run), "-At", "-F", " ", "-c", sql)
    return past_rollback_targets(t, res.stdout)


def schema_diff(run: PhaseRun, step: str) -> list[str]:
    """Lines by which the live schema differs from the pre-deployment dump's ([] if none)."""
    t = run.stack.target
    dump = run.ctx.backup_set().dump
    db = run.stack.workspace.database
    backup = run.exec(f"{step}_backup", t.services.postgres, "pg_restore", "-s", "-f", "-", dump)
    live = run.exec(
        f"{step}_live", t.services.postgres, "pg_dump", "-s", "-U", db.user, "-d", db.name
    )

    def norm(text: str) -> list[str]:
        return [ln for ln in text.splitlines() if ln.strip() and not ln.startswith(_SCHEMA_NOISE)]

    return [
        ln
        for ln in difflib.unified_diff(norm(backup.stdout), norm(live.stdout), lineterm="", n=0)
        if ln[:1] in "+-" and not ln.startswith(("+++", "---"))
    ]


def _probe_migrate_as_written(run: PhaseRun, to_undo: list[tuple[str, str]]) -> None:
    t = run.stack.target
    app, target = next(iter(t.migration_rollback.items()))
    literal = run.exec(
        f"migrate_{app}_plan", t.services.wsgi, *t.manage, "migrate", app, target, check=False
    )
    still = applied_beyond(run, "applied_after_plan")
    if literal.ok and still == to_undo:
        run.defect(
            "phase4-after-phase3-noop",
            f"with the previous code checked out, `migrate {app} {target}` changed nothing "
            f"({literal.tail(1)!r}); {_names(still)} still applied",
            evidence_of(literal, f"django_migrations afterwards: {_names(still)}"),
        )


def _new_release_runner(run: PhaseRun, to_undo: list[tuple[str, str]]) -> str:
    """Start the service whose image still has the new release's migrations (backend-asgi)."""
    stack, t = run.stack, run.stack.target
    runner = t.services.asgi
    run.compose("start_migration_runner", "start", runner)
    show_cmd = ["exec", "-T", runner, *t.manage, "showmigrations", *t.migration_rollback]

    def showmigrations() -> str:
        # polled: the first exec may come before the container's entrypoint has set up
        res = wait_for(
            lambda: stack.compose.run(*show_cmd, timeout=120),
            lambda r: r.ok,
            timeout_s=120,
            what=f"`manage.py showmigrations` to run in {runner}",
            interval_s=0.5,
        )
        return res.stdout

    shown = run.action(
        "showmigrations_runner", f"docker compose {' '.join(show_cmd)} (polled)", showmigrations
    )
    missing = [name for _, name in to_undo if name not in shown]
    if missing:
        run.compose("stop_migration_runner", "stop", runner, check=False)
        raise RollbackError(
            f"phase 4: no image left with {', '.join(missing)}: roll the migrations back "
            "before the code (phases 1→4→3)"
        )
    return runner
