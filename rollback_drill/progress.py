"""A journal event as one readable line: the drill's progress on a terminal.

The journal logs every event it records through the ``rollback_drill.progress`` logger (see
:meth:`rollback_drill.journal.Journal.event`), so whoever drives the engine sees the drill
happen -- pytest's plugin on its terminal, a script after ``logging.basicConfig(level=INFO)``::

    [  14.2 s] stack up ok in 12.9 s: http://127.0.0.1:32811
    [  31.0 s] baseline captured: p95_pre_hybrid@crud=0.0113, error_rate@all=0
    [  52.4 s] decision error_rate: roll_back (critical) measured 23.1 > threshold 10 -> phase_1

Routine instrument events (garbage-collection pauses) log at DEBUG, a failed step at WARNING,
the rest at INFO. The data is already redacted by the journal.
"""

from __future__ import annotations

import logging
from typing import Any

LOGGER = "rollback_drill.progress"
log = logging.getLogger(LOGGER)

_VALUE_CHARS = 100
_LINE_CHARS = 400
_QUIET = {"instrument"}  # the instrument's own bookkeeping: DEBUG
_SKIP_KEYS = {"phase", "status", "duration_s", "error", "tail", "at", "message"}


def level_of(kind: str, data: dict[str, Any]) -> int:
    if kind in _QUIET:
        return logging.DEBUG
    if data.get("status") == "failed" or (kind == "check" and data.get("passed") is False):
        return logging.WARNING
    return logging.INFO


def describe(kind: str, name: str, data: dict[str, Any]) -> str:
    """One line (no newline in it) saying what the event is, for a person watching."""
    phase = data.get("phase")
    if kind == "decision":
        line = _decision(name, data)
    elif kind == "baseline":
        values = data.get("values") or {}
        shown = ", ".join(f"{k}={_num(v)}" for k, v in values.items()) if values else "no values"
        problems = data.get("problems") or []
        line = f"baseline {name}: {shown}" + (f"; problems: {problems}" if problems else "")
    elif kind == "check" and phase == "end":
        line = _check(name, data)
    elif kind == "marker":
        line = name + _extras(data)
    elif kind == "drill" and phase == "start":
        line = f"drill {name}"
    elif kind == "defect":
        line = f"plan defect {name}: {_short(data.get('what_happened', ''))}"
    elif phase == "start":
        line = f"{kind} {name} ..." + _extras(data)
    elif phase == "end":
        line = _step_end(kind, name, data)
    elif isinstance(phase, str):
        line = f"{kind} {name} {phase}" + _extras(data)
    else:
        line = f"{kind} {name}" + _extras(data)
    return _short(line, _LINE_CHARS)


def _decision(name: str, data: dict[str, Any]) -> str:
    severity = data.get("severity")
    line = f"decision {name}: {data.get('decision', '?')}"
    if severity:
        line += f" ({severity})"
    line += f", measured {_num(data.get('measured_value'))}"
    line += f" vs threshold {_num(data.get('threshold'))}"
    scope = data.get("scope")
    if scope and scope != "None":
        line += f" [{scope}]"
    return line + f" -> {data.get('action', '?')}"


def _check(name: str, data: dict[str, Any]) -> str:
    if data.get("status") == "failed":
        return f"check {name} FAILED after {_secs(data)}: {_short(data.get('error', ''))}"
    verdict = "passed" if data.get("passed") else "FAILED"
    line = f"check {name} {verdict} in {_secs(data)}"
    measured, expected = data.get("measured"), data.get("expected")
    if measured not in (None, ""):
        line += f": measured {_short(measured)}"
    if expected not in (None, ""):
        line += f", expected {_short(expected)}"
    return line


def _step_end(kind: str, name: str, data: dict[str, Any]) -> str:
    if data.get("status") == "failed":
        line = f"{kind} {name} FAILED after {_secs(data)}: {_short(data.get('error', ''))}"
    else:
        line = f"{kind} {name} ok in {_secs(data)}"
    if "returncode" in data:
        line += f" (exit {data['returncode']})"
    extras = {k: v for k, v in data.items() if k not in ("returncode", "cmd_duration_s")}
    line += _extras(extras)
    tail = str(data.get("tail") or "").strip().splitlines()
    if data.get("status") == "failed" and tail:
        line += f"; last output: {_short(tail[-1])}"
    return line


def _extras(data: dict[str, Any]) -> str:
    shown = [f"{k}={text}" for k, v in data.items() if k not in _SKIP_KEYS and (text := _short(v))]
    return (": " + ", ".join(shown)) if shown else ""


def _secs(data: dict[str, Any]) -> str:
    d = data.get("duration_s")
    return f"{float(d):.1f} s" if isinstance(d, int | float) else "?"


def _num(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _short(value)
    return f"{value:.4g}"


def _short(value: Any, limit: int = _VALUE_CHARS) -> str:
    text = ",".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)
    text = " ".join(text.split())  # one line
    return text if len(text) <= limit else text[: limit - 1] + "…"
