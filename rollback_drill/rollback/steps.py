"""One phase as it runs: every step recorded (command, exit status, duration, output tail).

A :class:`PhaseRun` is what a phase module gets: ``compose``/``exec``/``host`` run a command and
record it as a journal step ``rollback phase<N>.<name>``; ``action`` records a step that is not a
single command (a poll, an HTTP check). A step that must succeed and does not raises
:class:`~rollback_drill.errors.RollbackError` naming phase, step, command and its last line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rollback_drill.compose import CommandResult, run_command
from rollback_drill.errors import DrillError, RollbackError
from rollback_drill.rollback.budgets import spec
from rollback_drill.rollback.result import PhaseResult, StepResult

if TYPE_CHECKING:
    from rollback_drill.rollback.context import RollbackContext

__all__ = ["PhaseResult", "PhaseRun", "StepResult"]  # the results: re-exported from ``result``


class PhaseRun:
    def __init__(self, ctx: RollbackContext, phase: int) -> None:
        self.ctx = ctx
        self.stack = ctx.stack
        self.phase = phase
        s = spec(phase, ctx.policy)
        self.result = PhaseResult(phase, s.title, s.budget_s, time.time())

    # ---- commands -------------------------------------------------------------------------
    def compose(
        self, name: str, *args: str, check: bool = True, timeout: float = 300.0
    ) -> CommandResult:
        """A ``docker compose`` command of the stack's project."""
        return self._record(name, lambda: self.stack.compose.run(*args, timeout=timeout), check)

    def exec(
        self, name: str, service: str, *cmd: str, check: bool = True, timeout: float = 180.0
    ) -> CommandResult:
        """``docker compose exec -T <service> <cmd>``: the plan's ``docker-compose exec``."""
        return self.compose(name, "exec", "-T", service, *cmd, check=check, timeout=timeout)

    def host(
        self,
        name: str,
        argv: list[str],
        *,
        cwd: Path | None = None,
        check: bool = True,
        timeout: float = 120.0,
        env: dict[str, str] | None = None,
    ) -> CommandResult:
        """A command on the host (git, a shell line), by default in the workspace."""
        where = cwd or self.stack.workspace.root
        return self._record(
            name, lambda: run_command(argv, cwd=where, timeout=timeout, env=env), check
        )

    def action(self, name: str, describe: str, fn: Callable[[], str]) -> str:
        """A step that is not one command: ``fn`` returns its output; an exception fails it."""
        step_name = f"phase{self.phase}.{name}"
        start = time.monotonic()
        with self.stack.journal.step("rollback", step_name, cmd=describe) as step:
            try:
                out = fn()
            except DrillError as exc:
                self._add(name, describe, 1, time.monotonic() - start, str(exc))
                # the same kind of error (LockHeld stays LockHeld), with phase and step named
                raise type(exc)(self._failure(name, describe, str(exc))) from None
            duration = time.monotonic() - start
            step.data.update(returncode=0, tail=_tail(out))
            self._add(name, describe, 0, duration, out)
        return out

    def defect(self, defect_id: str, what_happened: str, evidence: str) -> None:
        """Record an observed plan defect (in the run's log, the journal and this phase)."""
        seen = f"phase {self.phase} ({self.ctx.label})"
        self.ctx.defects.record(defect_id, what_happened, evidence, seen_in=seen)
        if defect_id not in self.result.defects:
            self.result.defects.append(defect_id)
        self.ctx.observed.append(defect_id)

    # ---- internals ------------------------------------------------------------------------
    def _record(self, name: str, fn: Callable[[], CommandResult], check: bool) -> CommandResult:
        step_name = f"phase{self.phase}.{name}"
        with self.stack.journal.step("rollback", step_name) as step:
            res = fn()
            step.data.update(
                cmd=res.describe(),
                returncode=res.returncode,
                cmd_duration_s=round(res.duration_s, 3),
                tail=res.tail(),
            )
            self._add(name, res.describe(), res.returncode, res.duration_s, res.tail())
            if check and not res.ok:
                raise RollbackError(
                    self._failure(name, res.describe(), f"exit {res.returncode}: {res.tail(1)}")
                )
        return res

    def _add(self, name: str, cmd: str, rc: int, duration: float, out: str) -> None:
        self.result.steps.append(StepResult(self.phase, name, cmd, rc, duration, _tail(out)))

    def _failure(self, name: str, cmd: str, why: str) -> str:
        short = cmd if len(cmd) < 160 else cmd[:157] + "..."
        return f"phase {self.phase} ({self.result.title}), step {name}: `{short}` failed: {why}"


def _tail(text: str, lines: int = 20) -> str:
    kept = [ln for ln in text.splitlines() if ln.strip()]
    return "\n".join(kept[-lines:])
