"""Which of the plan's rollback phases a decision calls for: one function of the decision and
the deployment's state, used by the drills, ``watch`` and a team's own scripts alike.

The plan's "Use if" lines, read as rules:

- bad data (the ``data_corruption`` trigger) -> Phase 5: rolling code or schema back keeps the
  bad rows; only the pre-deployment backup restores them;
- a defect on the ASGI side (the decision is about the ASGI service, or about the categories
  the hybrid release moved to ASGI: WebSockets and streaming) -> 1 -> 2: Phase 2 stops ASGI and
  routes all traffic to WSGI, which removes it ("All traffic routes to WSGI containers");
- a release that changed code -> 1 -> 3 ("Code changes need to be reverted"); when the release
  applied migrations that the previous code cannot run on ("Database migrations were applied
  and need rollback"; whether it can is ``check-migrations``' proof: unknown is said, and Phase
  4 is not chosen on a guess -- "Only use if migrations are reversible and tested"), Phase 4
  comes *before* Phase 3 (1 -> 4 -> 3): Phase 3 starts the previous code and smoke-tests it,
  which on the new schema fails by definition, so Phase 4 after it would never run;
- otherwise (containers and config only) -> 1 -> 2.

What changed comes from the deployment itself (:func:`deployment_state`: the files between the
previous and the deployed commit, and the migrations applied past the target's rollback
targets), never from the drill.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field

from rollback_drill.decisions import Decision
from rollback_drill.metrics import ScopeKind
from rollback_drill.stack import Stack
from rollback_drill.target import Target

__all__ = [
    "ASGI_CATEGORIES",
    "DATA_TRIGGERS",
    "DeploymentState",
    "Prescription",
    "applied_migrations",
    "choose_phases",
    "deployment_state",
    "phase_commands",
]

DATA_TRIGGERS = frozenset({"data_corruption"})
# the categories the plan's hybrid release serves from ASGI (its Phase 2 "Expected Result":
# streaming falls back to WSGI or fails, CRUD/auth/admin work normally)
ASGI_CATEGORIES = frozenset({"websocket", "streaming"})


@dataclass(frozen=True)
class DeploymentState:
    """What the deployment being rolled back changed."""

    code: bool = True  # application code (anything but the config files)
    config: bool = True  # nginx config, compose files
    migrations: tuple[str, ...] = ()  # ``app.name`` applied past the rollback targets
    # the previous release's code runs on the new schema: True/False when proven
    # (``rollback-drill check-migrations``), None when nobody knows
    previous_runs_on_schema: bool | None = None
    changed_files: tuple[str, ...] = field(default=(), compare=False)

    def describe(self) -> str:
        parts = [p for p, on in (("code", self.code), ("config", self.config)) if on]
        if self.migrations:
            parts.append(f"migrations {', '.join(self.migrations)}")
        return " + ".join(parts) or "nothing"


@dataclass(frozen=True)
class Prescription:
    phases: tuple[int, ...]
    reasons: tuple[str, ...]

    def describe(self) -> str:
        return "→".join(map(str, self.phases)) + ": " + "; ".join(self.reasons)


def _asgi_side(decision: Decision, target: Target | None) -> bool:
    scope = decision.scope
    if scope.kind == ScopeKind.SERVICE:
        asgi = {"asgi"} | ({target.services.asgi} if target is not None else set())
        return scope.name in asgi
    return scope.kind == ScopeKind.CATEGORY and scope.name in ASGI_CATEGORIES


def choose_phases(
    decision: Decision, state: DeploymentState, target: Target | None = None
) -> Prescription:
    """The plan's phases for ``decision`` given what the deployment changed, with the reasons."""
    about = f"{decision.trigger_id} ({decision.scope})"
    if decision.trigger_id in DATA_TRIGGERS:
        return Prescription(
            (5,), (f"{about}: bad data; only the pre-deployment backup restores it (Phase 5)",)
        )
    schema_blocks = bool(state.migrations) and state.previous_runs_on_schema is False
    if _asgi_side(decision, target) and not schema_blocks:
        return Prescription(
            (1, 2),
            (
                f"{about} is on the ASGI side: Phase 2 routes all traffic to WSGI",
                *_migration_note(state),
            ),
        )
    if not state.code:
        return Prescription((1, 2), (f"{about}: the deployment changed {state.describe()}",))
    reasons = [f"{about}: the deployment changed code ({state.describe()})"]
    if schema_blocks:
        reasons.append(
            "the previous code cannot run on the new schema: Phase 4 first (with the new code "
            "that has the migrations), then Phase 3"
        )
        return Prescription((1, 4, 3), tuple(reasons))
    return Prescription((1, 3), (*reasons, *_migration_note(state)))


def _migration_note(state: DeploymentState) -> tuple[str, ...]:
    if not state.migrations:
        return ()
    if state.previous_runs_on_schema:
        return ("the previous code runs on the new schema (proved): migrations stay",)
    return (
        "migrations stay applied: whether the previous code runs on them is not proven "
        "(run `rollback-drill check-migrations`); Phase 4 is not chosen on a guess",
    )


def classify_changes(target: Target, files: Iterable[str]) -> tuple[bool, bool]:
    """(code, config) of the paths (relative to the project dir) a release changed."""
    config_files = {*target.compose_files, target.paths.nginx_release_conf, target.env_file}
    ignored = {target.releases.marker_file} if target.releases.marker_file else set()
    code = config = False
    for path in files:
        if path in ignored:
            continue
        if path in config_files:
            config = True
        else:
            code = True
    return code, config


def phase_commands(phase: int, target: Target, project: str) -> list[str]:
    """The commands a phase runs on ``target``, as an operator would type them (what the
    executor does; ``watch`` prints those of the first phase when it exits for a rollback)."""
    s, p = target.services, target.paths
    dc = f"docker compose -p {shlex.quote(project)}"
    nginx_reload = f"{dc} exec {s.nginx} sh -c " + shlex.quote(
        f"cp {p.nginx_conf_backup} {p.nginx_conf} && nginx -t && nginx -s reload"
    )
    migrate = [
        f"{dc} exec {s.wsgi} {shlex.join(target.manage)} migrate {app} {to}"
        for app, to in target.migration_rollback.items()
    ]
    commands = {
        1: [
            f"{dc} stop {s.asgi}",
            "touch /tmp/deployment.lock",
            'echo "ROLLBACK IN PROGRESS" | <your team\'s notifier>',
        ],
        2: [
            nginx_reload,
            f"{dc} stop {s.asgi}",
            f"{dc} up -d --no-deps --scale {s.wsgi}={target.rollback.phase2_wsgi_replicas} "
            f"{s.wsgi}",
            f"curl -f http://127.0.0.1:<nginx port>{p.health}",
        ],
        3: [
            f"git checkout {target.releases.previous}",
            f"{dc} build {s.wsgi}",
            f"{dc} up -d {s.wsgi}",
            f"{dc} stop {s.asgi}",
            nginx_reload,
            "./scripts/smoke-test.sh",
        ],
        4: [*migrate, f"{dc} restart {s.wsgi}"],
        5: [
            f"{dc} down",
            f"restore the pre-deployment backup into {s.postgres} (pg_restore)",
            f"git checkout {target.releases.stable_tag} && {dc} up -d --build",
        ],
    }
    return commands[phase]


def migrations_query(target: Target) -> str:
    """The SQL listing ``app name`` of the target's apps' rows of ``django_migrations``."""
    apps = ", ".join(f"'{a}'" for a in target.migration_rollback)
    return f"SELECT app, name FROM django_migrations WHERE app IN ({apps}) ORDER BY app, name"


def past_rollback_targets(target: Target, psql_output: str) -> list[tuple[str, str]]:
    """``(app, migration)`` of :func:`migrations_query`'s rows (psql ``-At -F ' '``) past each
    app's rollback target (the target's ``migration_rollback``)."""
    rows = []
    for line in psql_output.splitlines():
        app, _, name = line.strip().partition(" ")
        to = target.migration_rollback.get(app)
        if to is not None and migration_number(name) > migration_number(to):
            rows.append((app, name))
    return rows


def applied_migrations(stack: Stack) -> tuple[str, ...]:
    """``app.name`` of the migrations in ``django_migrations`` past each app's rollback target
    (the target's ``migration_rollback``), read from the stack's PostgreSQL."""
    t, db = stack.target, stack.workspace.database
    if not t.migration_rollback:
        return ()
    out = stack.exec(
        t.services.postgres,
        *("psql", "-U", db.user, "-d", db.name, "-At", "-F", " ", "-c", migrations_query(t)),
    ).stdout
    return tuple(f"{app}.{name}" for app, name in past_rollback_targets(t, out))


def migration_number(migration: str) -> int:
    head = migration.split("_", 1)[0]
    return int(head) if head.isdigit() else -1


def deployment_state(
    stack: Stack, previous: str, *, previous_runs_on_schema: bool | None = None
) -> DeploymentState:
    """What the deployed commit (the workspace's HEAD) changed since release ``previous``: its
    files (``git diff``) and the migrations it applied (``django_migrations``)."""
    files = tuple(stack.workspace.git("diff", "--name-only", previous, "HEAD").split())
    code, config = classify_changes(stack.target, files)
    return DeploymentState(
        code=code,
        config=config,
        migrations=applied_migrations(stack),
        previous_runs_on_schema=previous_runs_on_schema,
        changed_files=files,
    )
