"""One strict "All containers are healthy" (issue 17 item 6): every container of the project
(``ps -a``) running, and healthy where it has a health check, except the services the executed
rollback phases stopped on purpose -- read from the commands they ran -- for the executor, the
checklist, the plan-scripts drill and the shell checks alike."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from rollback_drill.plan_scripts import SCRIPTS_DIR
from rollback_drill.rollback.executor import RollbackResult
from rollback_drill.rollback.health import judge_containers, main, stopped_on_purpose
from rollback_drill.rollback.steps import PhaseResult, StepResult

BASE = ["docker", "compose", "-p", "rbd-x", "-f", "compose.yml"]


def row(service: str, state: str = "running", health: str = "", n: int = 1) -> dict[str, Any]:
    return {"Service": service, "Name": f"rbd-x-{service}-{n}", "State": state, "Health": health}


HEALTHY = [
    row("nginx", health="healthy"),
    row("backend-wsgi", health="healthy"),
    row("postgres", health="healthy"),
    row("redis"),  # no health check: running is enough
]


def test_every_container_running_and_healthy_passes() -> None:
    verdict = judge_containers(HEALTHY)
    assert verdict.ok and not verdict.bad and not verdict.excused


def test_a_stopped_container_fails_unless_stopped_on_purpose() -> None:
    rows = [*HEALTHY, row("backend-asgi", "exited")]
    strict = judge_containers(rows)
    assert not strict.ok and strict.bad == {"rbd-x-backend-asgi-1": "exited"}
    excused = judge_containers(rows, {"backend-asgi"})
    assert excused.ok and excused.excused == {"rbd-x-backend-asgi-1": "exited"}
    assert "stopped on purpose by the rollback: rbd-x-backend-asgi-1" in excused.describe()
    # what the rollback did not stop is never excused: Redis left stopped
    redis = judge_containers([*rows[:3], row("redis", "exited"), rows[4]], {"backend-asgi"})
    assert not redis.ok and redis.bad == {"rbd-x-redis-1": "exited"}


def test_unhealthy_restarting_or_starting_fail_even_when_excused() -> None:
    for bad in (row("backend-asgi", health="unhealthy"), row("backend-asgi", "restarting")):
        assert not judge_containers([*HEALTHY, bad], {"backend-asgi"}).ok
    assert not judge_containers([*HEALTHY[:3], row("redis", health="starting")]).ok
    assert not judge_containers([]).ok  # no container at all is no evidence


def _result(*steps: tuple[int, str, int]) -> RollbackResult:
    result = RollbackResult((1, 2), 0.0)
    by_phase: dict[int, PhaseResult] = {}
    for phase, cmd, rc in steps:
        if phase not in by_phase:
            by_phase[phase] = PhaseResult(phase, f"phase {phase}", 60.0, 0.0, status="ok")
            result.phases.append(by_phase[phase])
        by_phase[phase].steps.append(StepResult(phase, "step", cmd, rc, 0.1, ""))
    return result


def _cmd(*args: str) -> str:
    return shlex.join([*BASE, *args])


def test_what_the_phases_stopped_comes_from_their_commands() -> None:
    phase12 = _result(
        (1, _cmd("stop", "backend-asgi"), 0),
        (2, "bash -c 'command -v slack-notify'", 1),
        (2, _cmd("up", "-d", "--no-deps", "--scale", "backend-wsgi=4", "backend-wsgi"), 0),
        (2, _cmd("exec", "-T", "nginx", "nginx", "-s", "reload"), 0),
    )
    assert stopped_on_purpose(phase12, BASE) == ("backend-asgi",)
    # Phase 4 starts the ASGI service to run the new release's migrations, then stops it again
    phase4 = _result(
        (1, _cmd("stop", "backend-asgi"), 0),
        (4, _cmd("start", "backend-asgi"), 0),
        (4, _cmd("stop", "--timeout", "10", "backend-asgi"), 0),
    )
    assert stopped_on_purpose(phase4, BASE) == ("backend-asgi",)
    # Phase 5: down, then everything up again: nothing left stopped
    phase5 = _result((5, _cmd("down"), 0), (5, _cmd("up", "-d", "--wait", "postgres"), 0))
    assert stopped_on_purpose(phase5, BASE) == ("*",)
    phase5.phases[0].steps.append(StepResult(5, "up", _cmd("up", "-d"), 0, 1.0, ""))
    assert stopped_on_purpose(phase5, BASE) == ()
    # a command that failed stopped nothing; another project's command is not this one's
    assert stopped_on_purpose(_result((1, _cmd("stop", "backend-asgi"), 1)), BASE) == ()
    other = shlex.join(["docker", "compose", "-p", "other", "stop", "redis"])
    assert stopped_on_purpose(_result((1, other, 0)), BASE) == ()


def _fake_compose(tmp_path: Path, rows: list[dict[str, Any]]) -> str:
    out = tmp_path / "ps.json"
    out.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    script = tmp_path / "compose.sh"
    script.write_text(f'#!/bin/bash\n[ "$1 $2" = "ps -a" ] || exit 9\ncat {out}\n')
    return f"bash {script}"


def test_the_module_is_the_shell_checks_rule(tmp_path: Path, capsys: Any) -> None:
    compose = _fake_compose(tmp_path, [*HEALTHY, row("backend-asgi", "exited")])
    assert main(["containers", "--compose", compose]) == 1
    assert capsys.readouterr().out.startswith("FAIL all containers are healthy: rbd-x-backend")
    assert main(["containers", "--compose", compose, "--stopped", "backend-asgi"]) == 0
    assert capsys.readouterr().out.startswith("PASS all containers are healthy: ")
    assert main(["containers", "--compose", "false"]) == 1
    assert "FAIL all containers are healthy: false ps -a: exit 1" in capsys.readouterr().out


def test_checks_sh_calls_the_same_rule_and_counts_ps_minus_a(tmp_path: Path) -> None:
    """``scripts/lib/checks.sh``'s check_containers: a stopped container fails (``ps -a``), a
    service stopped on purpose (STOPPED_ON_PURPOSE) does not."""
    compose = _fake_compose(tmp_path, [*HEALTHY, row("backend-asgi", "exited")])
    line = f'. {SCRIPTS_DIR / "lib" / "checks.sh"}; check_containers; echo "failed=$FAILED"'

    def run(stopped: str) -> str:
        env = {
            **os.environ,
            "DOCKER_COMPOSE": compose,
            "PYTHON": sys.executable,
            "STOPPED_ON_PURPOSE": stopped,
        }
        proc = subprocess.run(
            ["bash", "-c", line], capture_output=True, text=True, env=env, timeout=60, check=True
        )
        return proc.stdout

    strict = run("")
    assert "FAIL all containers are healthy: rbd-x-backend-asgi-1=exited" in strict
    assert strict.rstrip().endswith("failed=1")
    excused = run("backend-asgi")
    assert "PASS all containers are healthy" in excused and excused.rstrip().endswith("failed=0")
