"""The plan's scripts (``scripts/``, run as :mod:`rollback_drill.plan_scripts` runs them): the
files its rollback scripts and Phase 5 read against the files the backup procedure writes
(:mod:`rollback_drill.backup` and ``backup-config.sh``; the plan's own ``nginx.conf.backup`` vs
``nginx.conf.pre-hybrid.bak``), the services its ``docker-compose`` calls name, and the health
path it curls."""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from rollback_drill.readiness.findings import Finding, Review, shown
from rollback_drill.readiness.nginx import nginx_mounted
from rollback_drill.readiness.release import Release
from rollback_drill.target import Target
from rollback_drill.workspace import STATE_DIR

SCRIPTS = Path(__file__).parent.parent / "scripts"
ROLLBACK_SCRIPTS = ("rollback-config.sh", "rollback-full.sh")
BACKUP_SCRIPT = "backup-config.sh"


@dataclass(frozen=True)
class _Access:
    path: str  # a normalized path: "nginx:/etc/nginx/x", "host:<workspace>/x", ...
    script: str
    line: int
    text: str
    source: Path


def _script_accesses(target: Target) -> tuple[list[_Access], list[_Access]]:
    """(reads, writes) of files by the plan's scripts, with their variables as the suite sets
    them (:func:`rollback_drill.plan_scripts.script_env`)."""
    nginx_dir = os.path.dirname(target.paths.nginx_conf)
    subst = {
        "$NGINX_DIR": f"nginx:{nginx_dir}",
        "$BACKUPS_DIR": f"host:<workspace>/{STATE_DIR}/plan-backups",
        "$COMMIT_FILE": f"host:<workspace>/{STATE_DIR}/pre-migration-commit.txt",
    }

    def norm(word: str, in_nginx: bool) -> str:
        for var, value in subst.items():
            if word.startswith(var):
                return value + word[len(var) :]
        return (
            (f"nginx:{word}" if in_nginx else f"host:{word}")
            if word.startswith("/")
            else f"host:<workspace>/{word}"
        )

    reads: list[_Access] = []
    writes: list[_Access] = []
    for script in (BACKUP_SCRIPT, *ROLLBACK_SCRIPTS):
        path = SCRIPTS / script
        for lineno, text in enumerate(path.read_text().splitlines(), 1):
            if text.lstrip().startswith("#") or not text.strip():
                continue
            try:
                words = shlex.split(text, comments=True)
            except ValueError:
                continue
            in_nginx = bool(words) and words[0] == "$NGINX_EXEC"
            if in_nginx:
                words = words[1:]
            if len(words) == 3 and words[0] == "cp":
                reads.append(_Access(norm(words[1], in_nginx), script, lineno, text.strip(), path))
                if script == BACKUP_SCRIPT:
                    writes.append(
                        _Access(norm(words[2], in_nginx), script, lineno, text.strip(), path)
                    )
            elif script == BACKUP_SCRIPT and ">" in words and words.index(">") < len(words) - 1:
                out = words[words.index(">") + 1]
                writes.append(_Access(norm(out, False), script, lineno, text.strip(), path))
    return reads, writes


def suite_writes(target: Target, mounted: bool) -> list[str]:
    """The files :func:`rollback_drill.backup.take_backups` writes, normalized as above."""
    from rollback_drill.backup import BACKUP_SUFFIX, COMMIT_FILE, DUMP_PREFIX, DUMP_SUFFIX

    backup_name = os.path.basename(target.paths.nginx_conf_backup)
    nginx = (
        f"host:<workspace>/{STATE_DIR}/nginx/{backup_name}"
        if mounted
        else f"nginx:{target.paths.nginx_conf_backup}"
    )
    files = [
        f"host:<workspace>/{n}{BACKUP_SUFFIX}" for n in [*target.compose_files, target.env_file]
    ]
    dump = f"postgres:{target.paths.backups_dir.rstrip('/')}/{DUMP_PREFIX}*{DUMP_SUFFIX}"
    return [nginx, *files, f"host:<workspace>/{STATE_DIR}/{COMMIT_FILE}", dump]


_STEPS = {
    "rollback-config.sh": "Script 1 (rollback-config.sh): Restore Nginx -- the plan's quick "
    "config rollback (Phase 2 step 1 as a script)",
    "rollback-full.sh": "Script 2 (rollback-full.sh): Restore Nginx",
    "phase5": "Phase 5 step 2 (pg_restore of the pre-migration dump)",
    BACKUP_SCRIPT: "Configuration Backup Procedure (backup-config.sh), before deployment",
}


_SCRIPT_STEPS = {
    "rollback-config.sh": "Script 1 (rollback-config.sh), the plan's quick config rollback",
    "rollback-full.sh": "Script 2 (rollback-full.sh), the plan's full code rollback",
    BACKUP_SCRIPT: "Configuration Backup Procedure (backup-config.sh), before deployment",
}


def _plan_dump_read(target: Target) -> _Access:
    """The plan's Phase 5 restores ``/backups/pre-migration.dump`` (the suite keeps the name
    in :data:`rollback_drill.rollback.phase5.PLAN_DUMP`, where its probe reads it)."""
    from rollback_drill.rollback import phase5

    source = Path(phase5.__file__)
    line = next(
        (
            i
            for i, ln in enumerate(source.read_text().splitlines(), 1)
            if ln.startswith("PLAN_DUMP")
        ),
        0,
    )
    dump = f"{target.paths.backups_dir.rstrip('/')}/{phase5.PLAN_DUMP}"
    return _Access(f"postgres:{dump}", "phase5", line, f"pg_restore ... {dump}", source)


def check_backups(rel: Release, review: Review) -> list[str]:
    """Each file the rollback scripts and phases read is one the backup procedure writes, or
    a live file of the stack; returns the paths the rollback reads."""
    import fnmatch

    t = rel.target
    mounted = nginx_mounted(rel)
    reads, plan_writes = _script_accesses(t)
    reads.append(_plan_dump_read(t))
    written = list(dict.fromkeys([*suite_writes(t, mounted), *(w.path for w in plan_writes)]))
    live = {f"nginx:{t.paths.nginx_conf}", f"host:<workspace>/{t.env_file}"}
    live |= {f"host:<workspace>/{n}" for n in t.compose_files}
    for read in reads:
        if read.path in live or any(fnmatch.fnmatchcase(read.path, w) for w in written):
            continue
        where, _, path = read.path.partition(":")
        path = path.replace("<workspace>/", "")
        near = [w for w in written if w.rsplit("/", 1)[0] == read.path.rsplit("/", 1)[0]]
        near = near or [w for w in written if w.partition(":")[0] == where]
        names = [w.partition(":")[2].replace("<workspace>/", "") for w in near]
        if read.script == BACKUP_SCRIPT:
            message = (
                f"copies {path} ({read.text}), which is not a file of this stack (nginx config "
                f"{t.paths.nginx_conf}; compose files {', '.join(t.compose_files)}; env file "
                f"{t.env_file})"
            )
            fix = (
                "back up the stack's own files (the suite's backup does: rollback_drill/backup.py)"
            )
        else:
            message = (
                f"reads {path} ({read.text}), which the backup procedure never writes; it "
                f"writes {', '.join(names) or f'nothing in {where}'}"
            )
            fix = (
                f"restore {names[0]}, the file the backup procedure writes (or make the backup "
                f"also write {path})"
                if names
                else f"make the backup procedure write {path}"
            )
        review.add(
            Finding(
                "error",
                "backup-name",
                shown(read.source),
                read.line,
                message,
                _STEPS[read.script],
                fix,
            )
        )
    return [r.path for r in reads if r.script != BACKUP_SCRIPT]


_COMPOSE_VERBS = frozenset(
    {"stop", "start", "restart", "build", "up", "logs", "exec", "rm", "kill"}
)


def check_script_services(names: set[str], review: Review) -> None:
    """The services the plan's scripts name in their ``docker-compose`` calls must be services
    of the stack (the plan's are ``backend-wsgi``, ``backend-asgi``, ``postgres``)."""
    for script in (*ROLLBACK_SCRIPTS, BACKUP_SCRIPT):
        path = SCRIPTS / script
        for lineno, text in enumerate(path.read_text().splitlines(), 1):
            try:
                words = shlex.split(text, comments=True)
            except ValueError:
                continue
            if len(words) < 3 or words[0] != "$DOCKER_COMPOSE" or words[1] not in _COMPOSE_VERBS:
                continue
            verb, named = words[1], []
            for word in words[2:]:
                if word.startswith("-") or word.startswith("$"):
                    continue
                named.append(word.split("=", 1)[0])
                if verb == "exec":
                    break  # then the command
            for service in named:
                if service in names:
                    continue
                review.add(
                    Finding(
                        "error",
                        "script-service",
                        shown(path),
                        lineno,
                        f"`{text.strip()}` names service {service}, which this stack does not "
                        f"have (its services: {', '.join(sorted(names))})",
                        _SCRIPT_STEPS[script],
                        f"name the stack's own service in {script} (the target's services map "
                        "says which plays each role)",
                    )
                )


def script_health_paths() -> list[tuple[str, int, str]]:
    """(script, line, path) of each health request the plan's scripts send."""
    found: list[tuple[str, int, str]] = []
    for script in (*ROLLBACK_SCRIPTS, "lib/checks.sh"):
        for lineno, text in enumerate((SCRIPTS / script).read_text().splitlines(), 1):
            for m in re.finditer(r"\$\{?BASE_URL\}?(/[^\s\"');]*health[^\s\"');]*)", text):
                found.append((script, lineno, m.group(1)))
    return found


def check_health_paths(target: Target, review: Review) -> None:
    for script, line, path in script_health_paths():
        if path != target.paths.health:
            review.add(
                Finding(
                    "warning",
                    "health-path",
                    shown(SCRIPTS / script),
                    line,
                    f"the plan's script curls {path}; the target's health path is "
                    f"{target.paths.health}",
                    "Phase 2 step 4 / the scripts' health check (fails unless the app also "
                    f"serves {path})",
                    f"serve {path} too, or change the script to curl {target.paths.health}",
                )
            )
