"""Phase 2's WSGI replica count, without Docker: the target's ``rollback.phase2_wsgi_replicas``
(default the plan's 4), never below the replicas running; the count and why recorded as a step
before the scale command runs it; the plan's line as written still probed with its own 4 (plan
defect ``phase2-up-restarts-asgi``). A stack stand-in records the compose commands; nginx's
restore (its own tests) is replaced by a step that records nothing."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from paths import REFERENCE_TARGET, REPO_ROOT

from rollback_drill.announce import FileSink
from rollback_drill.compose import CommandResult
from rollback_drill.defects import DefectLog
from rollback_drill.errors import TargetError
from rollback_drill.journal import Journal
from rollback_drill.rollback import RollbackContext, phase2
from rollback_drill.rollback.choose import phase_commands
from rollback_drill.rollback.steps import PhaseRun
from rollback_drill.target import Rollback, Target, load_target

ASGI_STARTING = " Container rbd-x-backend-asgi-1  Starting"


class ComposeStandIn:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def run(self, *args: str, timeout: float = 300.0) -> CommandResult:
        self.calls.append(args)
        out = ASGI_STARTING if "--dry-run" in args else ""
        return CommandResult(["docker", "compose", *args], 0, 0.01, out, "")


class StackStandIn:
    def __init__(self, target: Target, running: int) -> None:
        self.target = target
        self.journal = Journal()
        self.compose = ComposeStandIn()
        self.base_url = "http://127.0.0.1:1"
        self._running = running

    def containers(self, service: str | None = None) -> list[Any]:
        assert service == self.target.services.wsgi
        return [SimpleNamespace(status="running") for _ in range(self._running)] + [
            SimpleNamespace(status="exited")
        ]

    def forget_ports(self) -> None:
        pass

    def http_ok(self, path: str) -> bool:
        return True


def _target(replicas: int | None = None) -> Target:
    target = load_target(REFERENCE_TARGET)
    if replicas is None:
        return target.model_copy(update={"rollback": Rollback()})
    return target.model_copy(update={"rollback": Rollback(phase2_wsgi_replicas=replicas)})


def _phase2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: Target, running: int
) -> tuple[PhaseRun, StackStandIn, DefectLog]:
    monkeypatch.setattr(phase2, "restore_nginx_conf", lambda run, backup: None)
    stack = StackStandIn(target, running)
    defects = DefectLog(stack.journal)
    ctx = RollbackContext(
        stack,  # type: ignore[arg-type]
        reason="test",
        sink=FileSink(tmp_path / "announce.txt"),
        defects=defects,
    )
    run = PhaseRun(ctx, 2)
    phase2.config_rollback(run)
    return run, stack, defects


def _scale_call(stack: StackStandIn) -> tuple[str, ...]:
    (call,) = [c for c in stack.compose.calls if c[0] == "up"]
    return call


def test_without_the_field_phase2_scales_to_the_plans_4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, stack, _ = _phase2(tmp_path, monkeypatch, _target(), running=1)
    assert _scale_call(stack) == (
        "up", "-d", "--no-deps", "--wait", "--scale", "backend-wsgi=4", "backend-wsgi"
    )  # fmt: skip
    step = next(s for s in run.result.steps if s.name == "wsgi_replicas")
    assert step.cmd == "backend-wsgi replicas: the plan's 4 (1 running)"


def test_the_targets_count_is_used_and_the_step_says_it_is_not_the_plans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, stack, defects = _phase2(tmp_path, monkeypatch, _target(1), running=1)
    assert "backend-wsgi=1" in _scale_call(stack)
    names = [s.name for s in run.result.steps]
    assert names.index("wsgi_replicas") < names.index("scale_wsgi")
    step = next(s for s in run.result.steps if s.name == "wsgi_replicas")
    assert step.cmd == (
        "backend-wsgi replicas: target reference's rollback.phase2_wsgi_replicas 1, "
        "not the plan's 4 (1 running)"
    )
    assert step.tail == "backend-wsgi=1"
    # the plan's line as written is still probed with its own 4, and its defect recorded
    (dry,) = [c for c in stack.compose.calls if "--dry-run" in c]
    assert dry == ("--dry-run", "up", "-d", "--scale", "backend-wsgi=4")
    assert "phase2-up-restarts-asgi" in run.result.defects
    assert "phase2-up-restarts-asgi" in defects


def test_phase2_never_scales_below_the_replicas_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, stack, _ = _phase2(tmp_path, monkeypatch, _target(2), running=3)
    assert "backend-wsgi=3" in _scale_call(stack)
    step = next(s for s in run.result.steps if s.name == "wsgi_replicas")
    assert step.cmd.startswith("backend-wsgi replicas: 3 running, kept (scale up only;")


@pytest.mark.parametrize(("wanted", "running", "expected"), [(4, 0, 4), (1, 0, 1), (1, 4, 4)])
def test_the_count_is_the_targets_or_the_running_ones_whichever_is_larger(
    wanted: int, running: int, expected: int
) -> None:
    assert phase2.wsgi_replicas(_target(wanted), running)[0] == expected


def test_the_reference_target_states_what_its_2_core_host_affords() -> None:
    assert load_target(REFERENCE_TARGET).rollback.phase2_wsgi_replicas == 1


def test_a_target_without_the_section_gets_the_plans_4() -> None:
    notes = load_target(REPO_ROOT / "examples" / "notes" / "target.yaml")
    assert notes.rollback.phase2_wsgi_replicas == phase2.PLAN_WSGI_REPLICAS


@pytest.mark.parametrize("value", ["0", "-1", "two", "65"])
def test_a_bad_replica_count_names_the_field(tmp_path: Path, value: str) -> None:
    path = tmp_path / "t.yaml"
    text = REFERENCE_TARGET.read_text()
    assert "phase2_wsgi_replicas: 1" in text
    path.write_text(
        text.replace("../compose", str(REFERENCE_TARGET.parent.parent / "compose")).replace(
            "phase2_wsgi_replicas: 1", f"phase2_wsgi_replicas: {value}"
        )
    )
    with pytest.raises(TargetError, match=r"rollback\.phase2_wsgi_replicas"):
        load_target(path)


def test_watchs_phase2_commands_name_the_targets_count() -> None:
    cmds = phase_commands(2, load_target(REFERENCE_TARGET), "rbd-x")
    assert "docker compose -p rbd-x up -d --no-deps --scale backend-wsgi=1 backend-wsgi" in cmds
