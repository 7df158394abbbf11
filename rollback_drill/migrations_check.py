"""``rollback-drill check-migrations``: prove on a throwaway copy of the data that a release's
migrations go forward and back without loss -- the plan's Phase 4 says "Only use if migrations
are reversible and tested", and this is the test.

In a private workspace and a Compose project of the run's own (the target's own PostgreSQL
image, so its major version), the round trip is:

1. **snapshot**: the ``--snapshot`` dump restored (``pg_restore`` into an emptied schema), or
   else the previous release migrated; then a burst of the traffic profile's writes through
   the previous release (the ledger records what was acknowledged);
2. **forward**: the next release deployed (its migrations applied by its own image first), then
   a burst of writes through it, so its new columns hold values;
3. **previous code on the forward schema**: the previous release's code brought back (Phase 3
   alone: build, restart the WSGI service, ASGI stopped, its nginx config) and the profile's
   reads and writes sent: all answered means Phase 3 alone is safe for this release;
4. **backward**: each migration the forward step applied is unapplied, newest first, one
   ``manage.py migrate APP PREVIOUS`` at a time, with the NEXT release's code (the code that
   has the migrations: after Phase 3 the old image cannot unapply them); a snapshot of every
   table (per-row, per-column md5 over the columns present on both sides) before and after
   each step names what the step lost. A column or table that the forward step dropped and the
   backward step re-created is compared with the first snapshot instead: rows whose values did
   not come back are lost. Then the apps are checked against ``migration_rollback``;
5. **previous release after backward**: its code restarted, the profile's reads sent, and every
   acknowledged write read back by the profile's ``read_back`` SQL (else listed as lost);
6. **forward again**: the next release's migrations applied once more.

Per migration the verdict is **reversible (proved)** or **irreversible** with the reason: no
reverse operation (Django's ``IrreversibleError``), the reverse raised, or data lost (table,
column, rows). The forward and backward times are held against Phase 4's budget
(:mod:`rollback_drill.rollback.budgets`).

Static findings: django-migration-linter over the same range, run inside the next release's
app image (its settings load there): the linter and its two small dependencies are copied from
this machine's environment into a read-only directory mounted into a one-off container of the
image (the image needs no network and no pip). Its findings sit beside the dynamic verdicts;
where the two disagree the dynamic result stands and the disagreement is listed. When it cannot
run, the report says "static analysis: not run (reason)".

Exit status: 0 when every migration of the range is proved reversible, 1 when one is
irreversible or a step of the round trip failed; set-up errors have the engine's own statuses
(:mod:`rollback_drill.errors`). The per-row digests are held in memory: a snapshot of many
millions of rows needs a machine with memory to match.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import importlib.util
import json
import shutil
import sys
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg

from rollback_drill.actions import Actions, ActionSettings
from rollback_drill.compose import CommandResult
from rollback_drill.deploy import deploy_release, ensure_users, install_nginx_conf, start_release
from rollback_drill.errors import DrillError, StackError, TargetError
from rollback_drill.http1 import Http1Pool
from rollback_drill.journal import Journal
from rollback_drill.ledger import Ledger
from rollback_drill.load import require_loopback
from rollback_drill.records import Outcome
from rollback_drill.rollback.budgets import budget_s, within_budget
from rollback_drill.stack import Stack
from rollback_drill.target import Target, load_target
from rollback_drill.traffic import Category
from rollback_drill.workspace import Workspace, create_workspace

__all__ = [
    "IRREVERSIBLE",
    "REVERSIBLE",
    "Loss",
    "MigrationVerdict",
    "RoundTrip",
    "Snapshot",
    "TableState",
    "add_parser",
    "check_migrations",
    "step_losses",
    "verdict",
]

REVERSIBLE = "reversible (proved)"
IRREVERSIBLE = "irreversible"
NOT_PROVED = "not proved"
BOOKKEEPING = frozenset({"django_migrations"})
"""Tables a migration changes by design (its own record): never compared."""
NULL = "-"  # the digest of a NULL value
LINTER_MOUNT = "/opt/rbd-migration-linter"
LINTER_MODULES = ("django_migration_linter", "appdirs", "toml")
LINT_MARK = "RBD-LINT "

# ---- snapshots and their comparison (pure) -------------------------------------------------


@dataclass(frozen=True)
class TableState:
    """One table at one moment: its columns, its key and each row's per-column digests
    (``rows[key][column]``: the first 16 hex digits of the md5 of the value's text)."""

    table: str
    columns: tuple[str, ...]
    key: tuple[str, ...]  # the primary key's columns; () -- a row's own digest keys it
    rows: Mapping[str, Mapping[str, str]]

    @property
    def count(self) -> int:
        return len(self.rows)

    def checksum(self, columns: Iterable[str] | None = None) -> str:
        """md5 over the rows ordered by key, each row's digests of ``columns`` (all)."""
        cols = sorted(self.columns if columns is None else columns)
        h = hashlib.md5(usedforsecurity=False)
        for key in sorted(self.rows):
            row = self.rows[key]
            h.update(f"{key}:{','.join(row.get(c, NULL) for c in cols)};".encode())
        return h.hexdigest()


Snapshot = Mapping[str, TableState]


@dataclass(frozen=True)
class Loss:
    """Data a step lost: ``rows`` rows of ``table`` (``column``: in that column only)."""

    table: str
    column: str | None
    rows: int
    how: str

    def describe(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        return f"{where}: {self.rows} row(s) {self.how}"


@dataclass(frozen=True)
class Dropped:
    """A table or column of the next release's own that the backward step dropped: its data
    never existed for the previous release (not a loss of its data; listed for the record)."""

    table: str
    column: str | None
    rows: int


def _changed(before: TableState, after: TableState, column: str) -> int:
    return sum(
        1
        for key, row in before.rows.items()
        if key in after.rows and row.get(column, NULL) != after.rows[key].get(column, NULL)
    )


def step_losses(
    first: Snapshot, before: Snapshot, after: Snapshot
) -> tuple[list[Loss], list[Dropped]]:
    """What one backward step lost, from the snapshots before and after it (and ``first``,
    the snapshot before the forward step, for what the forward step had dropped):

    - rows present before the step and gone after it;
    - values of a column present on both sides that the step changed;
    - a column or table of the previous release dropped by the step;
    - a column or table the step re-created (the forward step had dropped it): the rows of
      ``first`` whose values did not come back, and its rows that did not come back.
    Tables and columns that only the next release had are :class:`Dropped`, not losses."""
    losses: list[Loss] = []
    dropped: list[Dropped] = []
    for name in sorted(set(before) | set(after)):
        if name in BOOKKEEPING:
            continue
        b, a, o = before.get(name), after.get(name), first.get(name)
        if b is not None and a is None:
            if o is not None:
                losses.append(Loss(name, None, b.count, "lost: the table was dropped"))
            else:
                dropped.append(Dropped(name, None, b.count))
            continue
        if a is None:
            continue
        if b is None:
            if o is not None:
                missing = sum(1 for key in o.rows if key not in a.rows)
                if missing:
                    losses.append(Loss(name, None, missing, "not restored: table re-created"))
            continue
        missing = sum(1 for key in b.rows if key not in a.rows)
        if missing:
            losses.append(Loss(name, None, missing, "deleted"))
        for column in b.columns:
            if column in a.columns:
                n = _changed(b, a, column)
                if n:
                    losses.append(Loss(name, column, n, "changed"))
            elif o is not None and column in o.columns:
                losses.append(Loss(name, column, b.count, "lost: the column was dropped"))
            else:
                filled = sum(1 for row in b.rows.values() if row.get(column, NULL) != NULL)
                dropped.append(Dropped(name, column, filled))
        if o is not None:
            for column in a.columns:
                if column not in b.columns and column in o.columns:
                    n = _changed(o, a, column)
                    if n:
                        losses.append(
                            Loss(name, column, n, "not restored: the column was re-created")
                        )
    return losses, dropped


def table_rows(before: Snapshot, after: Snapshot) -> list[dict[str, Any]]:
    """Per table: rows and checksum (over the columns present on both sides) before the
    backward step and after it."""
    out = []
    for name in sorted(set(before) | set(after)):
        if name in BOOKKEEPING:
            continue
        b, a = before.get(name), after.get(name)
        shared = sorted(set(b.columns) & set(a.columns)) if b and a else []
        out.append(
            {
                "table": name,
                "rows_before": b.count if b else None,
                "rows_after": a.count if a else None,
                "columns_compared": shared,
                "checksum_before": b.checksum(shared) if b else None,
                "checksum_after": a.checksum(shared) if a else None,
                "equal": bool(b and a and b.count == a.count)
                and b is not None
                and a is not None
                and b.checksum(shared) == a.checksum(shared),
            }
        )
    return out


# ---- verdicts (pure) ----------------------------------------------------------------------


@dataclass
class MigrationVerdict:
    app: str
    name: str
    status: str = NOT_PROVED  # REVERSIBLE, IRREVERSIBLE or NOT_PROVED
    reason: str = ""
    backward_s: float | None = None
    losses: list[Loss] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)
    lint: list[dict[str, Any]] = field(default_factory=list)  # the linter's findings
    lint_result: str | None = None  # "ok", "warning", "error", None: not run

    @property
    def label(self) -> str:
        return f"{self.app}.{self.name}"


def verdict(
    ran: bool, ok: bool, output: str, losses: Sequence[Loss], earlier_failure: str | None = None
) -> tuple[str, str]:
    """A migration's verdict from its backward step: not run (an earlier step failed), failed
    (Django's IrreversibleError: no reverse operation; anything else: the reverse raised),
    ran and lost data, or ran and lost nothing -- reversible, proved."""
    if not ran:
        why = f"backward stopped before it ({earlier_failure})" if earlier_failure else "not run"
        return NOT_PROVED, why
    if not ok:
        if "IrreversibleError" in output:
            return IRREVERSIBLE, "no reverse operation: " + _last_line(output, "IrreversibleError")
        return IRREVERSIBLE, "the reverse raised: " + _last_line(output)
    if losses:
        return IRREVERSIBLE, "data lost: " + "; ".join(loss.describe() for loss in losses)
    return REVERSIBLE, "unapplied, every row and value of the shared columns kept"


def _last_line(output: str, containing: str = "") -> str:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    if containing:
        lines = [ln for ln in lines if containing in ln] or lines
    return (lines[-1] if lines else "no output")[:300]


def disagreements(verdicts: Sequence[MigrationVerdict], phase3_safe: bool | None) -> list[str]:
    """Where the linter and the round trip disagree (the round trip's result stands)."""
    out: list[str] = []
    linted = [v for v in verdicts if v.lint_result is not None]
    if phase3_safe is False and linted and all(v.lint_result != "error" for v in linted):
        out.append(
            "the linter found no backward-incompatible migration in the range, but the previous "
            "code failed on the forward schema (see Phase 3 alone)"
        )
    for v in verdicts:
        if v.lint_result is None:
            continue
        codes = ", ".join(sorted({str(f.get("code")) for f in v.lint})) or "none"
        if v.lint_result == "error" and phase3_safe:
            out.append(
                f"{v.label}: the linter calls it backward incompatible ({codes}), but the "
                "previous code answered every request on the forward schema"
            )
        if v.status == IRREVERSIBLE and v.lint_result == "ok":
            out.append(f"{v.label}: the linter found nothing; the round trip: {v.reason}")
        reversible_codes = {"RUNPYTHON_REVERSIBLE", "RUNSQL_REVERSIBLE"}
        if v.status == REVERSIBLE and reversible_codes & {str(f.get("code")) for f in v.lint}:
            out.append(f"{v.label}: the linter calls it irreversible; the round trip proved it")
    return out


# ---- the round trip's record --------------------------------------------------------------


@dataclass
class Step:
    name: str
    ok: bool
    seconds: float
    detail: str = ""


@dataclass
class RoundTrip:
    target: str
    previous: str
    next: str
    run_id: str = ""  # the run's label value: what ``cleanup --run`` names
    snapshot: str = ""  # where the data came from
    snapshot_rows: dict[str, int] = field(default_factory=dict)  # table -> rows
    snapshot_bytes: int | None = None  # pg_dump -Fc of the snapshot
    database_bytes: int | None = None
    steps: list[Step] = field(default_factory=list)
    forward_s: float | None = None
    backward_s: float | None = None
    forward_again_s: float | None = None
    phase4_budget_s: float = field(default_factory=lambda: budget_s(4))
    phase3_safe: bool | None = None
    phase3_failures: dict[str, str] = field(default_factory=dict)
    migrations: list[MigrationVerdict] = field(default_factory=list)
    tables: list[dict[str, Any]] = field(default_factory=list)
    acked_writes: int = 0
    lost_writes: list[str] = field(default_factory=list)
    corrupted_writes: list[str] = field(default_factory=list)
    rollback_targets: dict[str, str] = field(default_factory=dict)  # app -> problem
    static: str = "not run (the round trip did not reach it)"
    disagreements: list[str] = field(default_factory=list)
    total_s: float = 0.0
    failed: str | None = None  # the step that failed, if one did

    @property
    def irreversible(self) -> list[MigrationVerdict]:
        return [m for m in self.migrations if m.status == IRREVERSIBLE]

    @property
    def within_budget(self) -> bool | None:
        """The backward step (Phase 4 itself) within Phase 4's budget (None: not measured).
        Each unapplied migration is timed with the start of its one-off container, which the
        plan's ``exec`` into a running container does not pay: an upper bound."""
        if self.backward_s is None:
            return None
        return within_budget(self.backward_s, self.phase4_budget_s)

    @property
    def exit_status(self) -> int:
        proved = all(m.status == REVERSIBLE for m in self.migrations)
        return 0 if proved and not self.failed and not self.lost_writes else 1

    def as_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["exit_status"] = self.exit_status
        data["within_phase4_budget"] = self.within_budget
        return data


# ---- the database side --------------------------------------------------------------------

_TABLES = """
SELECT c.table_name, c.column_name
FROM information_schema.columns c
JOIN information_schema.tables t
  ON t.table_schema = c.table_schema AND t.table_name = c.table_name
WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
ORDER BY c.table_name, c.ordinal_position
"""
_KEYS = """
SELECT tc.table_name, kcu.column_name
FROM information_schema.table_constraints tc
JOIN information_schema.key_column_usage kcu
  ON kcu.constraint_name = tc.constraint_name AND kcu.table_schema = tc.table_schema
WHERE tc.table_schema = 'public' AND tc.constraint_type = 'PRIMARY KEY'
ORDER BY tc.table_name, kcu.ordinal_position
"""


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def rows_query(table: str, columns: Sequence[str], key: Sequence[str]) -> str:
    """One row per table row: its key's text, then each column's digest (NULL: ``-``)."""
    digests = [f"coalesce(left(md5({_ident(c)}::text), 16), '{NULL}')" for c in columns]
    if key:
        key_sql = " || '|' || ".join(f"coalesce({_ident(k)}::text, '')" for k in key)
    else:  # no primary key: the row's own digest and its occurrence number (a multiset)
        row = "md5(t::text)"
        key_sql = f"{row} || '#' || row_number() OVER (PARTITION BY {row})"
    return f"SELECT {key_sql}, {', '.join(digests)} FROM {_ident(table)} t"


def take_snapshot(dsn: str) -> dict[str, TableState]:
    """Every table of ``public``, read in one repeatable-read transaction (server-side
    cursors: a table's rows stream in, never all at once in the driver)."""
    with psycopg.connect(dsn) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        columns: dict[str, list[str]] = {}
        for table, column in conn.execute(_TABLES).fetchall():
            columns.setdefault(table, []).append(column)
        keys: dict[str, list[str]] = {}
        for table, column in conn.execute(_KEYS).fetchall():
            keys.setdefault(table, []).append(column)
        out: dict[str, TableState] = {}
        for table, cols in columns.items():
            key = keys.get(table, [])
            rows: dict[str, dict[str, str]] = {}
            with conn.cursor(name=f"rbd_{uuid.uuid4().hex[:8]}") as cur:
                cur.execute(rows_query(table, cols, key).encode())
                for rec in cur:
                    rows[str(rec[0])] = dict(zip(cols, rec[1:], strict=True))
            out[table] = TableState(table, tuple(cols), tuple(key), rows)
    return out


def applied_migrations(dsn: str) -> list[tuple[int, str, str]]:
    """``django_migrations`` in the order applied: (id, app, name)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT id, app, name FROM django_migrations ORDER BY id").fetchall()
    return [(int(i), str(a), str(n)) for i, a, n in rows]


def backward_plan(
    before: Sequence[tuple[int, str, str]], after: Sequence[tuple[int, str, str]]
) -> list[tuple[str, str, str]]:
    """The forward step's migrations, newest first, each with the migration of its app to
    migrate back to (the one applied before it, or ``zero``): (app, name, back_to)."""
    known = {(a, n) for _, a, n in before}
    added = [(i, a, n) for i, a, n in after if (a, n) not in known]
    plan = []
    for i, app, name in sorted(added, reverse=True):
        earlier = [n for j, a, n in after if a == app and j < i]
        plan.append((app, name, earlier[-1] if earlier else "zero"))
    return plan


def rollback_target_problems(
    targets: Mapping[str, str], applied: Sequence[tuple[int, str, str]]
) -> dict[str, str]:
    """Apps whose newest applied migration after the backward step is not the target's
    ``migration_rollback`` entry for it."""
    problems = {}
    for app, wanted in targets.items():
        names = [n for _, a, n in applied if a == app]
        latest = names[-1] if names else "zero"
        if latest != wanted and not latest.startswith(wanted + "_"):
            problems[app] = f"at {latest}, migration_rollback says {wanted}"
    return problems


# ---- traffic ------------------------------------------------------------------------------


@dataclass
class Burst:
    sent: int = 0
    failures: dict[str, str] = field(default_factory=dict)  # request -> last failure
    failed: int = 0


async def _burst(
    stack: Stack,
    ledger: Ledger,
    rounds: int,
    *,
    writes: bool,
    categories: Sequence[Category] = (),
) -> Burst:
    target = stack.target
    base = require_loopback(stack.base_url)
    parts = urlsplit(base)
    http = Http1Pool(parts.hostname or "127.0.0.1", parts.port or 80)
    out = Burst()
    try:
        actions = Actions(
            base,
            http,
            profile=target.traffic,
            user=stack.workspace.user,
            staff=stack.workspace.admin,
            ledger=ledger,
            virtual_users=1,
            settings=ActionSettings(15.0, 5.0),
        )
        crud = target.traffic.categories.crud
        requests = sorted(
            [r for r in (crud.requests if crud else []) if writes or r.method == "GET"],
            key=lambda r: 0 if (r.write or r.capture) and not r.pools() else 1,
        )
        for _ in range(rounds):
            for request in requests:
                result = await actions.run(Category.CRUD, request.name)
                _count(out, f"crud:{request.name}", result.outcome, result.status)
        for category in categories:
            result = await actions.run(category)
            _count(out, category.value, result.outcome, result.status)
    finally:
        await http.close()
    return out


def _count(out: Burst, key: str, outcome: Outcome, status: int | None) -> None:
    out.sent += 1
    if outcome is not Outcome.OK:
        out.failed += 1
        out.failures[key] = f"{outcome} (HTTP {status})"


def burst(stack: Stack, ledger: Ledger, rounds: int, **kw: Any) -> Burst:
    return asyncio.run(_burst(stack, ledger, rounds, **kw))


# ---- the linter ---------------------------------------------------------------------------

_LINT_SCRIPT = """
import json
from django_migration_linter import MigrationLinter
class Collect(MigrationLinter):
    found = {}
    def print_linting_msg(self, app_label, migration_name, msg, lint_result):
        self.current = (app_label, migration_name)
        self.found[self.current] = {"result": lint_result.value, "issues": []}
    def _keep(self, kind, issues):
        for i in issues:
            self.found[self.current]["issues"].append({"kind": kind,
                "code": getattr(i, "code", None), "message": getattr(i, "message", str(i)),
                "table": getattr(i, "table", None), "column": getattr(i, "column", None)})
    def print_errors(self, errors):
        self._keep("error", errors)
    def print_warnings(self, warnings):
        self._keep("warning", warnings)
linter = Collect(no_cache=True)
for app, name in RANGE:
    linter.lint_migration(linter.migration_loader.get_migration(app, name))
print("MARK" + json.dumps([[a, n, v] for (a, n), v in linter.found.items()]))
"""


def stage_linter(dest: Path) -> Path:
    """Copy django-migration-linter and its dependencies from this environment into ``dest``
    (mounted read-only into the app image's container: readable by any user); raises
    :class:`TargetError` naming what is missing."""
    dest.mkdir(exist_ok=True)
    dest.chmod(0o755)
    for module in LINTER_MODULES:
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise TargetError(
                f"{module} is not installed here (pip install django-migration-linter)"
            )
        origin = Path(spec.origin)
        if spec.submodule_search_locations:
            shutil.copytree(
                origin.parent,
                dest / module,
                dirs_exist_ok=True,
                ignore=shutil.ignore_patterns("__pycache__"),
            )
        else:
            shutil.copy2(origin, dest / origin.name)
    for path in [dest, *dest.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return dest


def run_linter(
    stack: Stack, workspace: Workspace, migrations: Sequence[tuple[str, str]]
) -> tuple[dict[tuple[str, str], dict[str, Any]], str]:
    """Lint ``migrations`` inside a one-off container of the checked-out release's app image;
    returns the findings per migration and how it ran (or why it did not: then no findings)."""
    t = stack.target
    try:
        staged = stage_linter(workspace.state_dir / "migration-linter")
    except TargetError as exc:
        return {}, f"not run ({exc})"
    script = _LINT_SCRIPT.replace("MARK", LINT_MARK).replace(
        "RANGE", json.dumps([list(m) for m in migrations])
    )
    res = stack.compose.run(
        "run",
        "--rm",
        "--no-deps",
        "-T",
        "-v",
        f"{staged}:{LINTER_MOUNT}:ro",
        "-e",
        f"PYTHONPATH={LINTER_MOUNT}",
        t.services.wsgi,
        *t.manage,
        "shell",
        "-c",
        script,
        timeout=300,
    )
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith(LINT_MARK)), None)
    if not res.ok or line is None:
        return {}, f"not run (the linter failed in the app image: {_last_line(res.tail(5))})"
    found = {(a, n): v for a, n, v in json.loads(line[len(LINT_MARK) :])}
    return found, (
        f"django-migration-linter in the {t.services.wsgi} image of the next release "
        f"({len(found)} migration(s))"
    )


# ---- the round trip -----------------------------------------------------------------------


def _timed(trip: RoundTrip, journal: Journal, name: str) -> _StepTimer:
    return _StepTimer(trip, journal, name)


class _StepTimer:
    """Times one step of the round trip and records it (failed with its error when it raises)."""

    def __init__(self, trip: RoundTrip, journal: Journal, name: str) -> None:
        self.trip, self.journal, self.name = trip, journal, name
        self.detail = ""
        self.ok = True

    def __enter__(self) -> _StepTimer:
        self.started = time.monotonic()
        self.journal.event("migrations", self.name, phase="start")
        return self

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        seconds = round(time.monotonic() - self.started, 2)
        ok = exc is None and self.ok
        if exc is not None:
            self.detail = f"{type(exc).__name__}: {exc}".splitlines()[0][:400]
        self.trip.steps.append(Step(self.name, ok, seconds, self.detail))
        if not ok and self.trip.failed is None:
            self.trip.failed = f"{self.name}: {self.detail}"
        self.journal.event("migrations", self.name, phase="end", ok=ok, seconds=seconds)


def _release_names(target: Target, previous: str | None, nxt: str | None) -> tuple[str, str]:
    rel = target.releases
    names = {"previous": rel.previous, "next": rel.next}
    known = {rel.previous, rel.next, *rel.overlays}
    chosen = []
    for given, default in ((previous, rel.previous), (nxt, rel.next)):
        name = names.get(given or "", given or default)
        if name not in known:
            raise TargetError(
                f"target {target.name}: no release '{name}' (previous = {rel.previous}, "
                f"next = {rel.next}, overlays: {', '.join(sorted(rel.overlays)) or 'none'})"
            )
        chosen.append(name)
    if chosen[0] == chosen[1]:
        raise TargetError(f"--from and --to are the same release ({chosen[0]})")
    return chosen[0], chosen[1]


def _ensure_release(stack: Stack, name: str) -> None:
    """A release named in ``overlays`` that the workspace has no tag for yet: committed on top
    of ``next`` (as the faulty releases are)."""
    from rollback_drill.faults.release import build_release

    ws, rel = stack.workspace, stack.target.releases
    if ws.git("tag", "--list", name):
        return
    build_release(
        ws,
        name,
        stack.target.overlay_dir(name),
        base=rel.next,
        marker_file=rel.marker_file,
    )


def _migrate(stack: Stack, *args: str, timeout: float = 600) -> CommandResult:
    t = stack.target
    return stack.compose.run(
        "run",
        "--rm",
        "--no-deps",
        "-T",
        t.services.wsgi,
        *t.manage,
        "migrate",
        *args,
        "--noinput",
        timeout=timeout,
    )


def _code(stack: Stack, release: str) -> None:
    """Check ``release`` out and build its WSGI image (what ``compose run`` then uses)."""
    stack.workspace.checkout(release)
    stack.compose.check("build", stack.target.services.wsgi, timeout=900)


def _restart_wsgi(stack: Stack) -> None:
    """The checked-out release's WSGI service recreated and awaited healthy; ASGI stopped
    (Phase 3: the previous release serves everything through WSGI)."""
    s = stack.target.services
    stack.compose.check("up", "-d", "--no-deps", s.wsgi, timeout=300)
    stack.forget_ports()
    stack.wait_healthy([s.wsgi], timeout_s=180)
    for container in stack.containers(s.asgi):
        if container.status == "running":
            container.stop(timeout=10)


def _restore(stack: Stack, dump: Path) -> None:
    """``dump`` (``pg_dump -Fc`` or plain SQL) loaded into an emptied ``public`` schema."""
    t, db = stack.target, stack.workspace.database
    pg = t.services.postgres
    inside = "/tmp/rbd-snapshot.dump"
    stack.compose.check("cp", str(dump), f"{pg}:{inside}", timeout=600)
    stack.exec(
        pg,
        "psql",
        "-v",
        "ON_ERROR_STOP=1",
        "-U",
        db.user,
        "-d",
        db.name,
        "-c",
        "DROP SCHEMA public CASCADE; CREATE SCHEMA public;",
    )
    if dump.read_bytes()[:5] == b"PGDMP":
        cmd = ["pg_restore", "--no-owner", "--no-privileges", "-U", db.user, "-d", db.name]
    else:
        cmd = ["psql", "-v", "ON_ERROR_STOP=1", "-U", db.user, "-d", db.name, "-f"]
    res = stack.exec(pg, *cmd, inside, check=False, timeout=1800)
    if not res.ok:
        raise StackError(f"restoring {dump.name} failed: {_last_line(res.tail(5))}")
    stack.exec(pg, "rm", "-f", inside, check=False)
    stack.exec(t.services.redis, "redis-cli", "FLUSHALL", check=False)  # stale cached rows


def _sizes(stack: Stack) -> tuple[int | None, int | None]:
    """The snapshot's size as ``pg_dump -Fc`` writes it, and the database's own size."""
    db, pg = stack.workspace.database, stack.target.services.postgres
    dump = stack.exec(pg, "sh", "-c", f"pg_dump -Fc -U {db.user} -d {db.name} | wc -c", check=False)
    size = stack.exec(
        pg,
        "psql",
        "-At",
        "-U",
        db.user,
        "-d",
        db.name,
        "-c",
        "SELECT pg_database_size(current_database())",
        check=False,
    )
    return (
        int(dump.stdout.strip()) if dump.ok and dump.stdout.strip().isdigit() else None,
        int(size.stdout.strip()) if size.ok and size.stdout.strip().isdigit() else None,
    )


def check_migrations(
    target_path: Path,
    *,
    snapshot: Path | None = None,
    previous: str | None = None,
    nxt: str | None = None,
    rounds: int = 10,
    report_root: Path = Path("reports"),
) -> RoundTrip:
    """The round trip (see the module's docstring); everything it created is removed at the
    end, also when a step fails or the run is interrupted."""
    started = time.monotonic()
    target = load_target(target_path)
    prev, to = _release_names(target, previous, nxt)
    if snapshot is not None and not snapshot.is_file():
        raise TargetError(f"--snapshot {snapshot}: no such file")
    run_id = uuid.uuid4().hex[:10]
    trip = RoundTrip(target.name, prev, to, run_id)
    journal = Journal(report_root / "check-migrations" / run_id / "journal.jsonl")
    workspace = create_workspace(target, run_id=run_id)
    stack: Stack | None = None
    try:
        stack = Stack(target, workspace, journal)
        _round_trip(stack, trip, snapshot, rounds)
    except (DrillError, psycopg.Error) as exc:  # reported as the failed step, exit status 1
        if trip.failed is None:
            trip.failed = f"{type(exc).__name__}: {exc}".splitlines()[0][:400]
        for m in trip.migrations:
            if m.status == NOT_PROVED and not m.reason:
                m.reason = "the round trip stopped before its backward step"
    finally:
        try:
            if stack is not None:
                stack.down()
        finally:
            workspace.remove()
        trip.total_s = round(time.monotonic() - started, 1)
    return trip


def _round_trip(stack: Stack, trip: RoundTrip, snapshot: Path | None, rounds: int) -> None:
    t, ws, journal = stack.target, stack.workspace, stack.journal
    s = t.services
    ledger = Ledger()
    for name in (trip.previous, trip.next):
        _ensure_release(stack, name)
    ws.checkout(trip.previous)
    with _timed(trip, journal, f"snapshot: {trip.previous} up"):
        start_release(stack, [s.nginx, s.wsgi, s.postgres, s.redis])
    dsn = stack.postgres_dsn()
    if snapshot is not None:
        with _timed(trip, journal, f"snapshot: restore {snapshot.name}"):
            _restore(stack, snapshot)
            res = _migrate(stack)
            if not res.ok:
                raise StackError(f"migrate on the restored snapshot: {_last_line(res.tail(5))}")
            ensure_users(stack)
        trip.snapshot = f"{snapshot} (restored), then {rounds} rounds of the profile's CRUD"
    else:
        trip.snapshot = f"{trip.previous} migrated, then {rounds} rounds of the profile's CRUD"
    with _timed(trip, journal, f"writes through {trip.previous}") as step:
        b = burst(stack, ledger, rounds, writes=True)
        step.detail = f"{b.sent - b.failed}/{b.sent} answered"
        step.ok = b.failed == 0
    trip.snapshot_bytes, trip.database_bytes = _sizes(stack)
    first = take_snapshot(dsn)
    trip.snapshot_rows = {name: state.count for name, state in sorted(first.items())}
    applied_before = applied_migrations(dsn)

    with _timed(trip, journal, f"forward: deploy {trip.next}") as step:
        before = len(journal.events)
        deploy_release(stack, trip.next)
        migrate_ev = [
            e
            for e in journal.events[before:]
            if e.kind == "deploy" and e.name == "migrate" and e.data.get("phase") == "end"
        ]
        trip.forward_s = migrate_ev[-1].data.get("duration_s") if migrate_ev else None
        step.detail = f"migrate {trip.forward_s} s"
    applied_after = applied_migrations(dsn)
    plan = backward_plan(applied_before, applied_after)
    trip.migrations = [MigrationVerdict(app, name) for app, name, _ in plan]
    if not plan:
        trip.static = "not run (the forward step applied no migration)"
    else:
        with _timed(trip, journal, "static: django-migration-linter") as step:
            found, trip.static = run_linter(stack, ws, [(a, n) for a, n, _ in plan])
            for v in trip.migrations:
                if (v.app, v.name) in found:
                    v.lint_result = found[(v.app, v.name)]["result"]
                    v.lint = found[(v.app, v.name)]["issues"]
            step.detail = trip.static
    with _timed(trip, journal, f"writes through {trip.next}") as step:
        b = burst(stack, ledger, rounds, writes=True)
        step.detail = f"{b.sent - b.failed}/{b.sent} answered"
        step.ok = b.failed == 0

    with _timed(trip, journal, f"previous code ({trip.previous}) on the forward schema") as step:
        _code(stack, trip.previous)
        _restart_wsgi(stack)
        install_nginx_conf(stack, t.paths.nginx_release_conf)
        b = burst(stack, ledger, max(1, rounds // 2), writes=True, categories=_checks(t))
        trip.phase3_safe = b.failed == 0 if b.sent else None
        trip.phase3_failures = b.failures
        step.detail = (
            f"{b.sent - b.failed}/{b.sent} answered: Phase 3 alone "
            + {
                True: "is safe",
                False: "is NOT safe, Phase 4 required",
                None: "not judged (the profile has no request to send)",
            }[trip.phase3_safe]
        )

    with _timed(trip, journal, f"backward: {len(plan)} migration(s) with {trip.next}'s code"):
        _code(stack, trip.next)
        current = take_snapshot(dsn)
        before_backward = current
        total = 0.0
        failure: str | None = None
        for v, (app, _name, back_to) in zip(trip.migrations, plan, strict=True):
            if failure is not None:
                v.status, v.reason = verdict(False, False, "", [], failure)
                continue
            res = _migrate(stack, app, back_to)
            v.backward_s = round(res.duration_s, 2)
            total += res.duration_s
            journal.event("migrations", "unapply", migration=v.label, ok=res.ok)
            losses: list[Loss] = []
            if res.ok:
                after = take_snapshot(dsn)
                losses, v.dropped = step_losses(first, current, after)
                current = after
            else:
                failure = f"{v.label} failed"
            v.losses = losses
            v.status, v.reason = verdict(True, res.ok, res.tail(8), losses)
        trip.backward_s = round(total, 2)
        trip.tables = table_rows(before_backward, current)
        for row in trip.tables:
            row["lost"] = [
                loss.describe()
                for m in trip.migrations
                for loss in m.losses
                if loss.table == row["table"]
            ]
        trip.rollback_targets = rollback_target_problems(
            t.migration_rollback, applied_migrations(dsn)
        )
    trip.disagreements = disagreements(trip.migrations, trip.phase3_safe)

    with _timed(trip, journal, f"{trip.previous} after backward: reads, acked writes") as step:
        _code(stack, trip.previous)
        _restart_wsgi(stack)
        b = burst(stack, Ledger(), 1, writes=False, categories=_checks(t))
        from rollback_drill.checks.data import no_acked_write_lost

        if t.read_back:
            check = no_acked_write_lost(dsn, ledger, t.read_back)
            trip.acked_writes = int(check.measured.get("acked", 0))
            trip.lost_writes = list(check.data.get("missing_ids", []))
            trip.corrupted_writes = list(check.data.get("corrupted_ids", []))
            read = f"acked writes: {check.detail}"
        else:
            read = "acked writes not read back: the profile declares no ledger.read_back"
        step.detail = f"reads {b.sent - b.failed}/{b.sent} answered; {read}"
        step.ok = b.failed == 0 and not trip.lost_writes and not trip.corrupted_writes

    with _timed(trip, journal, "forward again") as step:
        _code(stack, trip.next)
        res = _migrate(stack)
        trip.forward_again_s = round(res.duration_s, 2)
        step.ok = res.ok
        step.detail = "migrate " + ("ok" if res.ok else f"failed: {_last_line(res.tail(5))}")


def _checks(target: Target) -> list[Category]:
    """The WSGI categories the profile has besides CRUD (login, admin): one request each."""
    observable = target.traffic.observable()
    return [c for c in (Category.AUTH, Category.ADMIN) if c.value in observable]


# ---- output -------------------------------------------------------------------------------


def render(trip: RoundTrip) -> list[str]:
    """The round trip as a readable table."""
    lines = [
        f"check-migrations: target {trip.target}, {trip.previous} -> {trip.next} "
        f"({trip.total_s:.0f} s)",
        f"  snapshot: {trip.snapshot}; {sum(trip.snapshot_rows.values())} rows in "
        f"{len(trip.snapshot_rows)} tables, pg_dump -Fc {_size(trip.snapshot_bytes)}, "
        f"database {_size(trip.database_bytes)}",
        "",
        f"  {'step':<58} {'s':>7}  result",
    ]
    for step in trip.steps:
        verdict_ = "ok" if step.ok else "FAILED"
        lines.append(f"  {step.name[:58]:<58} {step.seconds:7.1f}  {verdict_} {step.detail}")
    budget = trip.phase4_budget_s
    lines += [
        "",
        f"  backward (Phase 4) {_secs(trip.backward_s)}: "
        + {True: "within", False: "NOT within", None: "not measured against"}[trip.within_budget]
        + f" its budget of {budget:.0f} s; forward migrate {_secs(trip.forward_s)}, "
        f"forward again {_secs(trip.forward_again_s)}",
        "  Phase 3 alone (previous code on the forward schema): "
        + {True: "safe", False: "NOT safe -- Phase 4 required", None: "not tried"}[trip.phase3_safe]
        + (
            " (" + ", ".join(f"{k} {v}" for k, v in trip.phase3_failures.items()) + ")"
            if trip.phase3_failures
            else ""
        ),
        "",
        f"  {'migration':<48} {'back s':>7}  {'linter':<8} verdict",
    ]
    for m in trip.migrations:
        lines.append(
            f"  {m.label[:48]:<48} {_secs(m.backward_s, ''):>7}  {m.lint_result or '-':<8} "
            f"{m.status.upper() if m.status == IRREVERSIBLE else m.status}: {m.reason}"
        )
        for issue in m.lint:
            lines.append(f"  {'':<48} {'':>7}  linter {issue['kind']}: {issue['message']}")
        for d in m.dropped:
            where = f"{d.table}.{d.column}" if d.column else f"table {d.table}"
            lines.append(
                f"  {'':<48} {'':>7}  dropped the next release's own {where} "
                f"({d.rows} {'non-NULL value(s)' if d.column else 'row(s)'})"
            )
    if trip.tables:
        lines += ["", f"  {'table (before -> after backward)':<40} {'rows':>13}  checksum"]
        for row in trip.tables:
            rows = f"{_n(row['rows_before'])} -> {_n(row['rows_after'])}"
            same = "equal" if row["equal"] else "DIFFERENT"
            if row["rows_before"] is None or row["rows_after"] is None:
                same = "created" if row["rows_before"] is None else "dropped"
            if row.get("lost"):
                same += " over the shared columns; LOST: " + "; ".join(row["lost"])
            lines.append(f"  {row['table'][:40]:<40} {rows:>13}  {same}")
    lines += ["", f"  static analysis: {trip.static}"]
    for text in trip.disagreements:
        lines.append(f"  disagreement (the round trip stands): {text}")
    for app, problem in trip.rollback_targets.items():
        lines.append(f"  migration_rollback: {app} {problem}")
    lost = trip.lost_writes + trip.corrupted_writes
    lines.append(
        f"  acknowledged writes on the rolled-back schema: {trip.acked_writes - len(lost)}/"
        f"{trip.acked_writes} read back"
        + (f"; LOST or changed: {', '.join(lost[:10])}" if lost else "")
    )
    if trip.failed:
        lines.append(f"  FAILED step: {trip.failed}")
    irreversible = ", ".join(m.label for m in trip.irreversible)
    if irreversible:
        final = f"IRREVERSIBLE migration(s): {irreversible}"
    elif trip.exit_status != 0:
        final = "not proved"
    elif trip.migrations:
        final = "every migration proved reversible"
    else:
        final = "nothing to prove: the forward step applied no migration"
    lines.append(f"  verdict: {final}")
    return lines


def _size(n: int | None) -> str:
    return "?" if n is None else f"{n / 1024:.0f} KiB"


def _secs(s: float | None, none: str = "not measured") -> str:
    return none if s is None else f"{s:.1f} s"


def _n(n: int | None) -> str:
    return "-" if n is None else str(n)


# ---- command line -------------------------------------------------------------------------


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """The ``check-migrations`` subcommand (``subparsers``: ``add_subparsers()``)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "check-migrations",
        help="prove a release's migrations go forward and back on a copy of the data "
        "(exits 1: an irreversible migration)",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    p.add_argument("--target", type=Path, required=True, help="the target file (YAML)")
    p.add_argument("--snapshot", type=Path, default=None, metavar="DUMP", help="a pg_dump file")
    p.add_argument("--from", dest="previous", default=None, metavar="REF", help="(previous)")
    p.add_argument(
        "--to", dest="next", default=None, metavar="REF", help="(next; or any releases.overlays)"
    )
    p.add_argument("--rounds", type=int, default=10, help="rounds of CRUD per write burst (10)")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="the result as JSON")
    p.add_argument(
        "--report-dir", type=Path, default=Path("reports"), help="journal in DIR/check-migrations/"
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    try:
        trip = check_migrations(
            args.target,
            snapshot=args.snapshot,
            previous=args.previous,
            nxt=args.next,
            rounds=args.rounds,
            report_root=args.report_dir,
        )
    except KeyboardInterrupt:
        print(
            "rollback-drill: check-migrations interrupted; its stack was removed", file=sys.stderr
        )
        return 130
    except DrillError:
        raise
    for line in render(trip):
        print(line)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(trip.as_json(), indent=2) + "\n")
    return trip.exit_status
