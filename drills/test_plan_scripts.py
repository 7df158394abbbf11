"""The plan's own scripts, run as the plan wrote them against a real stack.

Each script drill runs ``scripts/<name>`` with only commands and paths from the environment
(``rollback_drill.plan_scripts.script_env``). Where a script fails, the failure must be one a
known plan defect explains (``rollback_drill.plan_scripts.diagnose``): it is then reported as
that defect -- with the script's command, exit status and output -- and the suite's executor
finishes the rollback with the corrected step, within the plan's budget and without data loss.
A failure no known defect explains fails the drill; nothing is patched silently.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rollback_drill.checks.base import CheckResult, require
from rollback_drill.checks.checklist import containers_healthy
from rollback_drill.checks.success import phases_within_budget, rollback_in_time
from rollback_drill.compose import CommandResult
from rollback_drill.defects import evidence_of
from rollback_drill.fixtures.rollback import MIN_WRITES, RollbackDrill, assert_served
from rollback_drill.lock import DeploymentLock
from rollback_drill.plan_scripts import (
    Finding,
    diagnose,
    run_script,
    script_env,
    staging_clock,
)
from rollback_drill.policy import default_policy
from rollback_drill.rollback.health import stopped_on_purpose

pytestmark = [pytest.mark.full, pytest.mark.nightly]

PLAN_DUMP_NAME = "pre-migration-.sql"  # the plan's name, its $(...) lost


def script_outcome(d: RollbackDrill, name: str, res: CommandResult) -> list[Finding]:
    """Record the run; report the plan defects it shows; fail on an unexplained failure."""
    d.record_property(f"script:{name}_s", round(res.duration_s, 2))
    d.record_property(f"script:{name}_exit", res.returncode)
    findings = diagnose(name, res, d.stack)
    for f in findings:
        d.defects.record(f.defect_id, f.what_happened, f.evidence, seen_in=f"{name} ({d.nodeid})")
    if not res.ok and not findings:
        pytest.fail(
            f"{name} failed and no known plan defect explains it: exit {res.returncode}\n"
            f"{res.tail(15)}",
            pytrace=False,
        )
    return findings


def test_backup_config_script(phase_drill: RollbackDrill) -> None:
    d, stack = phase_drill, phase_drill.stack
    t, root = stack.target, stack.workspace.root
    env = script_env(stack)
    res = run_script(stack, "backup-config.sh")
    script_outcome(d, "backup-config.sh", res)
    # what the procedure promises, item by item
    stack.exec(t.services.nginx, "cmp", t.paths.nginx_conf, t.paths.nginx_conf_backup)
    for name in (*t.compose_files, ".env"):
        assert (root / f"{name}.backup").read_bytes() == (root / name).read_bytes(), name
    assert Path(env["COMMIT_FILE"]).read_text().strip() == stack.workspace.head()
    # the database snapshot: where did it go, and can pg_restore read it?
    host_dump = Path(env["BACKUPS_DIR"]) / PLAN_DUMP_NAME
    assert host_dump.is_file() and host_dump.stat().st_size > 0, "the plan's dump was not written"
    listing = stack.compose.run("exec", "-T", t.services.postgres, "ls", "-1", t.paths.backups_dir)
    if PLAN_DUMP_NAME not in listing.stdout.split():
        d.defects.record(
            "backup-dump-host-path",
            f"the dump was written by the calling shell to {host_dump} on the host; the "
            f"postgres container's {t.paths.backups_dir} (where Phase 5 restores from) "
            f"holds: {', '.join(listing.stdout.split()) or 'nothing'}",
            evidence_of(
                f"$ backup-config.sh  → exit {res.returncode}; {host_dump}: "
                f"{host_dump.stat().st_size} bytes",
                listing,
            ),
            seen_in=f"backup-config.sh ({d.nodeid})",
        )
    inside = f"/tmp/{PLAN_DUMP_NAME}"
    stack.compose.check("cp", str(host_dump), f"{t.services.postgres}:{inside}")
    readable = stack.compose.run("exec", "-T", t.services.postgres, "pg_restore", "--list", inside)
    if not readable.ok:
        head = host_dump.read_text(errors="replace").splitlines()[:3]
        d.defects.record(
            "backup-dump-plain-sql",
            f"the procedure's dump ({PLAN_DUMP_NAME}: its date expansion was lost too) is plain "
            f"SQL, which pg_restore cannot read: {readable.tail(1)}",
            evidence_of(readable, "first lines of the dump: " + " | ".join(head)),
            seen_in=f"backup-config.sh ({d.nodeid})",
        )
    assert res.ok, res.tail()


def test_rollback_config_script(phase_drill: RollbackDrill) -> None:
    d, stack = phase_drill, phase_drill.stack
    rel = stack.target.releases
    d.backup()
    d.deploy_hybrid()
    load = d.start_load()
    load.wait_for_writes(MIN_WRITES)
    res = run_script(stack, "rollback-config.sh", "staging")
    findings = script_outcome(d, "rollback-config.sh", res)
    checks: list[CheckResult] = []
    if findings:  # the corrected step: the executor's phases 1→2
        result = d.rollback((1, 2), f"drill: rollback-config.sh failed ({findings[0].defect_id})")
        checks += phases_within_budget(result)
    assert_served(stack, "/api/stream/", "wsgi", rel.next)
    load.wait_for_writes(MIN_WRITES, after=time.time())
    d.stop_loads()
    require(d.no_data_loss(), *checks)
    DeploymentLock.for_stack(stack).force_release()


def test_rollback_full_script(phase_drill: RollbackDrill) -> None:
    d, stack = phase_drill, phase_drill.stack
    rel = stack.target.releases
    backups = d.backup()
    d.deploy_hybrid()
    hybrid_head = stack.workspace.head()
    load = d.start_load()
    load.wait_for_writes(MIN_WRITES)
    res = run_script(stack, "rollback-full.sh", backups.commit)
    findings = script_outcome(d, "rollback-full.sh", res)
    checks: list[CheckResult] = []
    if findings:
        assert stack.workspace.head() == hybrid_head  # the script stopped before changing anything
        result = d.rollback((1, 3), f"drill: rollback-full.sh failed ({findings[0].defect_id})")
        checks += phases_within_budget(result)
    assert stack.workspace.head() == backups.commit
    assert_served(stack, "/api/stream/", "wsgi", rel.previous)
    load.wait_for_writes(MIN_WRITES, after=time.time())
    d.stop_loads()
    require(d.no_data_loss(), *checks)
    DeploymentLock.for_stack(stack).force_release()


def test_check_scripts_pass_on_a_healthy_stack_and_fail_on_a_broken_one(
    phase_drill: RollbackDrill,
) -> None:
    d, stack = phase_drill, phase_drill.stack
    wsgi = stack.target.services.wsgi
    for name in ("smoke-test.sh", "full-health-check.sh", "verify-rollback.sh"):
        res = run_script(stack, name)
        script_outcome(d, name, res)
        assert res.ok and "FAIL" not in res.stdout, res.tail()
    stack.stop(wsgi)
    try:
        for name in ("smoke-test.sh", "full-health-check.sh"):
            res = run_script(stack, name, CHECK_RETRIES="1")
            assert not res.ok and "FAIL health endpoint returns 200" in res.stdout, res.tail()
    finally:
        stack.start(wsgi)
        stack.wait_healthy([wsgi])


def test_staging_drill_script(phase_drill: RollbackDrill) -> None:
    """The plan's "Testing the Rollback Plan", with its own success criteria. The rollback is
    timed as the plan's script ran (its timing marks; a missing one fails the drill), plus the
    corrected step when the script failed on a known plan defect."""
    d, stack = phase_drill, phase_drill.stack
    rel = stack.target.releases
    policy = default_policy()
    asgi = stack.target.services.asgi  # rollback-config.sh is the plan's Phase 2: ASGI stops
    load = d.start_load()
    load.wait_for_writes(MIN_WRITES)
    res = run_script(stack, "staging-drill.sh", SOAK_S="5", STOPPED_ON_PURPOSE=asgi)
    findings = script_outcome(d, "staging-drill.sh", res)
    clock = staging_clock(res)  # RollbackError naming a missing mark: never 0 s
    for name, seconds in clock.spans.items():
        d.record_property(f"script:{name}_s", round(seconds, 2))
    rollback_s = clock.rollback_s
    stopped: tuple[str, ...] = (asgi,)
    if findings:  # the corrected step, then the plan's own verification again
        result = d.rollback((1, 2), f"drill: staging rollback failed ({findings[0].defect_id})")
        rollback_s += result.time_to_rollback_s
        stopped = stopped_on_purpose(result, stack.compose.base)
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(result.started))
        verify = run_script(
            stack, "verify-rollback.sh", LOG_SINCE=since, STOPPED_ON_PURPOSE=" ".join(stopped)
        )
        assert verify.ok, verify.tail(15)
    d.record_property("staging_rollback_s", round(rollback_s, 2))
    assert_served(stack, "/api/stream/", "wsgi", rel.next)
    load.wait_for_writes(MIN_WRITES, after=time.time())
    d.stop_loads()
    healthy = containers_healthy(stack, stopped)
    require(
        rollback_in_time(
            rollback_s,
            policy,
            what="rollback-config.sh as it ran"
            + (" + the corrected phases 1->2" if findings else ""),
        ),
        CheckResult(
            "All services return to healthy state",
            healthy.passed,
            healthy.measured,
            healthy.expected,
            healthy.detail,
        ),
        d.no_data_loss(),
    )
    DeploymentLock.for_stack(stack).force_release()
