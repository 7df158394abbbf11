"""What a failed drill leaves to diagnose it: read from the stack *before* it is torn down.

:func:`capture` reads ``docker compose ps -a``, the last lines of every service's logs and the
journal's failing (or still running) step with its command output, records them in the journal
(one ``diagnostics`` event, redacted as every event) and returns them as readable text for the
test report. Each part is read on its own: a part that cannot be read (the daemon gone, a
compose call timing out) is named in the text, never raised -- a diagnosis must not hide the
failure it diagnoses.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from rollback_drill.journal import Journal

LOG_TAIL = 40  # lines per service


class Inspectable(Protocol):
    """What :func:`capture` needs of a stack (:class:`rollback_drill.stack.Stack` has it)."""

    project: str
    journal: Journal

    def ps(self) -> list[dict[str, Any]]: ...

    def logs(self, service: str, tail: int = 100) -> str: ...


def capture(
    stack: Inspectable,
    reason: str,
    *,
    since: float = 0.0,
    services: list[str] | None = None,
    tail: int = LOG_TAIL,
) -> str:
    """Read the stack's state and logs now; journal them; return them as text.

    ``since`` (monotonic) bounds the search for the failing step to this drill's events;
    ``services`` adds services that may have no container (one that was never created)."""
    journal = stack.journal
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    try:
        rows = stack.ps()
        ps_text = _ps_table(rows)
    except Exception as exc:
        ps_text = f"(docker compose ps failed: {type(exc).__name__}: {exc})"
    names = sorted({str(r.get("Service")) for r in rows if r.get("Service")} | set(services or []))
    logs: dict[str, str] = {}
    for service in names:
        try:
            logs[service] = stack.logs(service, tail=tail).rstrip() or "(no output)"
        except Exception as exc:
            logs[service] = f"(docker compose logs failed: {type(exc).__name__}: {exc})"
    step = _step_text(journal, since)
    journal.event(
        "diagnostics",
        stack.project,
        reason=reason,
        ps=ps_text,
        logs=logs,
        step=step,
        read_in_s=round(time.monotonic() - started, 2),
    )
    parts = [f"stack {stack.project} ({reason}), read before its teardown", ""]
    if step:
        parts += [step, ""]
    parts += ["$ docker compose ps -a", ps_text, ""]
    for service, text in logs.items():
        parts += [f"$ docker compose logs --tail {tail} {service}", text, ""]
    return str(journal.scrub("\n".join(parts).rstrip() + "\n"))


def _step_text(journal: Journal, since: float) -> str:
    """The failing step and its command output; else the step still running (a hang)."""
    failed = journal.last_failed_step(since)
    if failed is not None:
        d = failed.data
        lines = [f"failing step: {failed.kind} {failed.name} ({d.get('error', 'failed')})"]
        if d.get("cmd"):
            lines.append(f"  command: {d['cmd']}")
        if "returncode" in d:
            lines.append(f"  exit status: {d['returncode']}")
        if d.get("tail"):
            lines.append("  output:")
            lines += [f"    {ln}" for ln in str(d["tail"]).splitlines()]
        return "\n".join(lines)
    running = journal.current_step()
    return f"running step: {running.describe()}" if running is not None else ""


def _ps_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no containers)"
    cols = ("Service", "Name", "State", "Health", "ExitCode", "Status")
    table = [list(cols)] + [[str(r.get(c, "") or "") for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in table
    )
