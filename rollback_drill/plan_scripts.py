"""Running the plan's scripts (``scripts/``) against a stack, and reading their failures.

The scripts are the plan's, as written; only commands and paths come from the environment
(:func:`script_env`): ``DOCKER_COMPOSE`` is this stack's ``docker compose -p ...``,
``NGINX_EXEC`` runs nginx-side commands in its nginx container, ``BASE_URL`` is its nginx on
127.0.0.1, and so on. :func:`run_script` records the run in the journal like any step.

:func:`diagnose` reads a script's output for the known plan defects (``rollback_drill.defects``)
that explain its failure: a drill reports those, and fails on anything they do not explain.

:func:`staging_clock` times the plan's "Testing the Rollback Plan" sequence as
``staging-drill.sh`` ran it, from the timing marks it prints around each script
(``== <script> <start|end> <epoch> [exit N]``): a missing mark is an error, never 0 s.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from rollback_drill.backup import COMMIT_FILE
from rollback_drill.compose import CommandResult, run_command
from rollback_drill.defects import evidence_of
from rollback_drill.errors import RollbackError
from rollback_drill.stack import Stack

__all__ = [
    "SCRIPTS_DIR",
    "STAGING_STEPS",
    "Finding",
    "StagingClock",
    "diagnose",
    "run_script",
    "script_env",
    "staging_clock",
]

SCRIPTS_DIR = Path(__file__).with_name("scripts")  # the repository's scripts/, shipped inside
PLAN_BACKUP_DIR = "plan-backups"  # host directory standing in for the plan's /backups


def script_env(stack: Stack, **overrides: str) -> dict[str, str]:
    """The environment that points the plan's scripts at ``stack``."""
    t, ws = stack.target, stack.workspace
    compose = shlex.join(stack.compose.base)
    backups = ws.state_dir / PLAN_BACKUP_DIR
    backups.mkdir(exist_ok=True)
    env = {
        "DOCKER_COMPOSE": compose,
        "NGINX_EXEC": f"{compose} exec -T {shlex.quote(t.services.nginx)}",
        "NGINX_DIR": os.path.dirname(t.paths.nginx_conf),
        "APP_DIR": str(ws.root),
        "SCRIPTS_DIR": str(SCRIPTS_DIR),
        "BASE_URL": stack.base_url,
        "BACKUPS_DIR": str(backups),
        "COMMIT_FILE": str(ws.state_dir / COMMIT_FILE),
        "DRILL_USER": ws.user.username,
        "DRILL_PASSWORD": ws.user.password,
        # the containers check runs the suite's own rule (rollback_drill.rollback.health)
        "PYTHON": sys.executable,
        # Debian's docker.io has no buildx: Compose builds with the classic builder
        "DOCKER_BUILDKIT": "0",
        "COMPOSE_BAKE": "false",
    }
    env.update(overrides)
    return env


def run_script(
    stack: Stack, name: str, *args: str, timeout: float = 900.0, **env: str
) -> CommandResult:
    """Run ``scripts/<name>`` from the app directory, as the plan does; never raises on exit."""
    path = SCRIPTS_DIR / name
    with stack.journal.step("script", name, args=list(args)) as step:
        res = run_command(
            ["bash", str(path), *args],
            cwd=stack.workspace.root,
            timeout=timeout,
            env=script_env(stack, **env),
        )
        step.data.update(
            returncode=res.returncode,
            cmd_duration_s=round(res.duration_s, 3),
            tail=res.tail(30),
        )
    return res


@dataclass(frozen=True)
class Finding:
    """A known plan defect that a script's output shows."""

    defect_id: str
    what_happened: str
    evidence: str


def diagnose(name: str, res: CommandResult, stack: Stack) -> list[Finding]:
    """The known plan defects ``res`` (a run of ``scripts/<name>``) shows."""
    out = res.stdout + "\n" + res.stderr
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    found: list[Finding] = []
    backup = os.path.dirname(stack.target.paths.nginx_conf) + "/nginx.conf.backup"
    missing = [ln for ln in lines if "nginx.conf.backup" in ln and "No such file" in ln]
    if missing:
        script = name if name != "staging-drill.sh" else "rollback-config.sh (in staging-drill.sh)"
        found.append(
            Finding(
                "nginx-backup-name",
                f"{script} stopped at `cp {backup} ...`: no such file -- the backup procedure "
                f"writes {stack.target.paths.nginx_conf_backup}",
                evidence_of(f"$ {name}  → exit {res.returncode}", *missing[-2:]),
            )
        )
    if name == "rollback-full.sh" and any(ln.startswith("Usage:") for ln in lines):
        found.append(
            Finding(
                "backup-commit-empty",
                "rollback-full.sh printed its usage and exited although it was given a commit: "
                "BACKUP_COMMIT= is empty in the plan",
                evidence_of(res),
            )
        )
    return found


def script_source(name: str) -> str:
    return Path(SCRIPTS_DIR / name).read_text()


STAGING_STEPS = ("deploy-hybrid.sh", "rollback-config.sh", "verify-rollback.sh")
"""The scripts ``staging-drill.sh`` runs, in order; each must leave a start and an end mark."""


@dataclass(frozen=True)
class StagingClock:
    """``staging-drill.sh``'s scripts as they ran: each one's span and exit status."""

    spans: dict[str, float]  # script -> seconds from its start mark to its end mark
    exits: dict[str, int]  # script -> exit status its end mark printed

    @property
    def rollback_s(self) -> float:
        """The plan's rollback script as it ran (``rollback-config.sh``)."""
        return self.spans["rollback-config.sh"]

    @property
    def verified_s(self) -> float:
        """From the rollback script's start to the verification's end."""
        return sum(self.spans[n] for n in STAGING_STEPS[1:]) + self.gap_s

    gap_s: float = 0.0  # between the rollback's end mark and the verification's start mark


def staging_clock(res: CommandResult) -> StagingClock:
    """The spans of ``staging-drill.sh``'s scripts from its marks; :class:`RollbackError`
    naming the missing or unreadable mark (a script that never ran is no 0-second rollback)."""
    marks: dict[tuple[str, str], float] = {}
    exits: dict[str, int] = {}
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) < 4 or parts[0] != "==" or parts[2] not in ("start", "end"):
            continue
        try:
            marks[(parts[1], parts[2])] = float(parts[3])
            if parts[2] == "end" and len(parts) >= 6 and parts[4] == "exit":
                exits[parts[1]] = int(parts[5])
        except ValueError:
            raise RollbackError(
                f"staging-drill.sh: unreadable timing mark {line.strip()!r}"
            ) from None
    missing = [
        f"== {name} {kind}"
        for name in STAGING_STEPS
        for kind in ("start", "end")
        if (name, kind) not in marks
    ]
    if missing:
        raise RollbackError(
            f"staging-drill.sh (exit {res.returncode}) printed no timing mark "
            f"{', '.join(repr(m) for m in missing)}: the plan's rollback cannot be timed"
        )
    spans = {n: marks[(n, "end")] - marks[(n, "start")] for n in STAGING_STEPS}
    negative = [n for n, v in spans.items() if v < 0]
    if negative:
        raise RollbackError(f"staging-drill.sh: {negative[0]} ends before it starts")
    gap = marks[("verify-rollback.sh", "start")] - marks[("rollback-config.sh", "end")]
    return StagingClock(spans, exits, gap_s=max(0.0, gap))
