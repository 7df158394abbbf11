"""The plan's scripts: valid shell, the plan's text kept, failures read as plan defects."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace
from typing import Any

import pytest
from paths import REFERENCE_TARGET

from rollback_drill.compose import CommandResult
from rollback_drill.plan_scripts import SCRIPTS_DIR, diagnose, script_source
from rollback_drill.target import load_target

PLAN_SCRIPTS = [
    "rollback-config.sh",
    "rollback-full.sh",
    "backup-config.sh",
    "smoke-test.sh",
    "verify-rollback.sh",
    "full-health-check.sh",
    "deploy-hybrid.sh",
    "staging-drill.sh",
]


@pytest.mark.parametrize("name", [*PLAN_SCRIPTS, "lib/checks.sh"])
def test_scripts_are_valid_bash(name: str) -> None:
    proc = subprocess.run(["bash", "-n", str(SCRIPTS_DIR / name)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_the_plans_text_is_kept_as_written() -> None:
    config = script_source("rollback-config.sh")
    assert "$NGINX_EXEC cp $NGINX_DIR/nginx.conf.backup $NGINX_DIR/nginx.conf" in config
    assert "$NGINX_EXEC nginx -t && $NGINX_EXEC nginx -s reload" in config
    assert "$DOCKER_COMPOSE up -d --scale backend-wsgi=4\n" in config
    full = script_source("rollback-full.sh")
    assert "\nBACKUP_COMMIT=\n" in full  # the plan lost its $1
    assert "\nsleep 5\n" in full
    backup = script_source("backup-config.sh")
    assert "$NGINX_EXEC cp $NGINX_DIR/nginx.conf $NGINX_DIR/nginx.conf.pre-hybrid.bak" in backup
    assert "pg_dump -U arena_user arena_production > $BACKUPS_DIR/pre-migration-.sql" in backup
    staging = script_source("staging-drill.sh")
    assert "sleep $SOAK_S" in staging and "SOAK_S=${SOAK_S:-60}" in staging


def test_defaults_are_the_plans_values() -> None:
    config = script_source("rollback-config.sh")
    for default in (
        "DOCKER_COMPOSE=${DOCKER_COMPOSE:-docker-compose}",
        "NGINX_DIR=${NGINX_DIR:-/etc/nginx}",
        "BASE_URL=${BASE_URL:-http://localhost}",
    ):
        assert default in config
    assert "APP_DIR=${APP_DIR:-/app/Chat-Arena-Backend}" in script_source("rollback-full.sh")


def test_rollback_full_as_written_prints_usage_whatever_it_is_given() -> None:
    proc = subprocess.run(
        ["bash", str(SCRIPTS_DIR / "rollback-full.sh"), "0123abcd"], capture_output=True, text=True
    )
    assert proc.returncode == 1 and proc.stdout.startswith("Usage: ./rollback-full.sh")


def _stack() -> Any:
    return SimpleNamespace(target=load_target(REFERENCE_TARGET))


def test_diagnose_reads_the_backup_name_defect() -> None:
    res = CommandResult(
        ["bash", "rollback-config.sh"],
        1,
        2.0,
        "Restoring Nginx configuration...\n",
        "cp: cannot stat '/etc/nginx/nginx.conf.backup': No such file or directory\n",
    )
    [finding] = diagnose("rollback-config.sh", res, _stack())
    assert finding.defect_id == "nginx-backup-name"
    assert "nginx.conf.pre-hybrid.bak" in finding.what_happened
    assert "cannot stat" in finding.evidence


def test_diagnose_reads_the_empty_commit_defect() -> None:
    res = CommandResult(
        ["bash", "rollback-full.sh", "abc"], 1, 0.1, "Usage: ./rollback-full.sh <commit-hash>\n", ""
    )
    ids = [f.defect_id for f in diagnose("rollback-full.sh", res, _stack())]
    assert ids == ["backup-commit-empty"]


def test_diagnose_explains_nothing_else() -> None:
    res = CommandResult(["bash", "smoke-test.sh"], 1, 0.1, "FAIL health endpoint returns 200\n", "")
    assert diagnose("smoke-test.sh", res, _stack()) == []
