"""Plan defects: where the rollback plan itself is wrong, as observed by running it.

The registry (:data:`KNOWN`) says what the plan says and the corrected step the suite's executor
uses instead. A defect is *reported* only when a drill observed it: :meth:`DefectLog.record`
turns a known defect into a :class:`PlanDefect` with what happened and the evidence (the
commands run, their exit status and output), writes a ``defect`` event to the journal and keeps
it for the run's summary. Nothing here assumes a defect: the drills and the executor's probes
run the plan's step as written and record a defect only when its failure shows.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from types import MappingProxyType
from typing import Any, Final

from rollback_drill.compose import CommandResult
from rollback_drill.journal import Journal

__all__ = ["KNOWN", "DefectLog", "KnownDefect", "PlanDefect", "evidence_of"]


@dataclass(frozen=True)
class PlanDefect:
    """A defect of the plan, observed: what the plan says, what happened, the corrected step."""

    id: str
    plan_says: str
    what_happened: str
    corrected_step: str
    evidence: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        return f"{self.id}: {self.what_happened} — corrected: {self.corrected_step}"


@dataclass(frozen=True)
class KnownDefect:
    id: str
    where: str  # the plan's section
    plan_says: str
    corrected_step: str

    def observed(self, what_happened: str, evidence: str) -> PlanDefect:
        return PlanDefect(self.id, self.plan_says, what_happened, self.corrected_step, evidence)


def _known(*defects: KnownDefect) -> Mapping[str, KnownDefect]:
    return MappingProxyType({d.id: d for d in defects})


KNOWN: Final[Mapping[str, KnownDefect]] = _known(
    KnownDefect(
        "nginx-backup-name",
        "Rollback Scripts (rollback-config.sh, rollback-full.sh)",
        "cp /etc/nginx/nginx.conf.backup /etc/nginx/nginx.conf",
        "restore nginx.conf.pre-hybrid.bak, the file the Configuration Backup Procedure writes",
    ),
    KnownDefect(
        "backup-commit-empty",
        "Rollback Scripts (rollback-full.sh)",
        'BACKUP_COMMIT=  (the $1 was lost), then `if [ -z "$BACKUP_COMMIT" ]` → usage',
        "BACKUP_COMMIT=$1 (the executor checks out the commit the backup recorded)",
    ),
    KnownDefect(
        "previous-commit-empty",
        "Phase 3 step 1",
        "PREVIOUS_COMMIT=  (the $(...) was lost), then `git checkout $PREVIOUS_COMMIT`",
        "check out the commit the backup procedure recorded in pre-migration-commit.txt",
    ),
    KnownDefect(
        "slack-notify-missing",
        "Phase 1 step 3",
        'echo "ROLLBACK IN PROGRESS" | slack-notify',
        "send the plan's Rollback Announcement Template, filled, to a configured sink "
        "(file or HTTP webhook)",
    ),
    KnownDefect(
        "phase2-up-restarts-asgi",
        "Phase 2 step 3 (and rollback-config.sh)",
        "docker-compose up -d --scale backend-wsgi=4  (right after stopping backend-asgi)",
        "docker-compose up -d --no-deps --scale backend-wsgi=4 backend-wsgi",
    ),
    KnownDefect(
        "phase4-after-phase3-noop",
        "Phase 4 step 2 after Phase 3",
        "docker-compose exec backend-wsgi python manage.py migrate ai_model 0010  "
        "(with the previous code checked out by Phase 3)",
        "roll the migrations back with the new release's code: run Phase 4 before Phase 3 "
        "(1→4→3), or from the new release's image (backend-asgi, which Phase 3 does not rebuild)",
    ),
    KnownDefect(
        "phase4-verify-dt",
        "Phase 4 step 3",
        'psql -U arena_user -d arena_production -c "\\dt"',
        "compare django_migrations and the schema (pg_dump --schema-only) with the "
        "pre-deployment backup's",
    ),
    KnownDefect(
        "phase5-exec-after-down",
        "Phase 5 steps 1-2",
        "docker-compose down, then docker-compose exec postgres pg_restore ...",
        "docker-compose up -d postgres (alone) before restoring into it",
    ),
    KnownDefect(
        "phase5-dump-missing",
        "Phase 5 step 2",
        "pg_restore ... /backups/pre-migration.dump",
        "restore the dump the backup procedure wrote (the suite's: custom format, "
        "named in the backup manifest), into a freshly created database",
    ),
    KnownDefect(
        "backup-dump-plain-sql",
        "Configuration Backup Procedure step 5",
        "docker-compose exec postgres pg_dump -U arena_user arena_production "
        "> /backups/pre-migration-$(date).sql",
        "pg_dump -Fc -f /backups/pre-migration-<UTC time>.dump inside the postgres container "
        "(custom format: pg_restore reads it), verified with pg_restore --list",
    ),
    KnownDefect(
        "backup-dump-host-path",
        "Configuration Backup Procedure step 5",
        "docker-compose exec postgres pg_dump ... > /backups/pre-migration-$(date).sql",
        "write the dump inside the container (pg_dump -f /backups/...), where Phase 5 "
        "restores from: the shell's redirect writes on the host, not in the postgres container",
    ),
)


def evidence_of(*items: CommandResult | str, lines: int = 6) -> str:
    """Evidence text: each command with its exit status, duration and output tail."""
    parts: list[str] = []
    for item in items:
        if isinstance(item, str):
            parts.append(item)
        else:
            tail = item.tail(lines)
            head = f"$ {item.describe()}  → exit {item.returncode} ({item.duration_s:.2f} s)"
            parts.append(head + (f"\n{tail}" if tail else ""))
    return "\n".join(parts)


class DefectLog:
    """The plan defects observed in a run, once each (the first evidence is kept)."""

    def __init__(self, journal: Journal | None = None) -> None:
        self.journal = journal
        self._lock = threading.Lock()
        self._defects: dict[str, PlanDefect] = {}
        self._seen_in: dict[str, list[str]] = {}

    def record(
        self, defect_id: str, what_happened: str, evidence: str, *, seen_in: str = ""
    ) -> PlanDefect:
        """Record an observed known defect; a journal ``defect`` event every time."""
        known = KNOWN.get(defect_id)
        if known is None:
            raise KeyError(f"unknown plan defect {defect_id!r} (known: {', '.join(KNOWN)})")
        defect = known.observed(what_happened, evidence)
        with self._lock:
            kept = self._defects.setdefault(defect_id, defect)
            where = self._seen_in.setdefault(defect_id, [])
            if seen_in and seen_in not in where:
                where.append(seen_in)
        if self.journal is not None:
            self.journal.event("defect", defect_id, seen_in=seen_in, **defect.as_dict())
        return kept

    def extend(self, defects: Iterable[PlanDefect], *, seen_in: str = "") -> None:
        for d in defects:
            self.record(d.id, d.what_happened, d.evidence, seen_in=seen_in)

    @property
    def defects(self) -> list[PlanDefect]:
        with self._lock:
            return list(self._defects.values())

    def ids(self) -> set[str]:
        with self._lock:
            return set(self._defects)

    def seen_in(self, defect_id: str) -> list[str]:
        with self._lock:
            return list(self._seen_in.get(defect_id, []))

    def __contains__(self, defect_id: object) -> bool:
        with self._lock:
            return defect_id in self._defects

    def __len__(self) -> int:
        with self._lock:
            return len(self._defects)
