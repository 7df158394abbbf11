"""A check's result: its name, whether it passed, and the evidence measured — never a bare bool."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CheckResult:
    name: str  # the checklist item or success criterion, as the plan words it
    passed: bool
    measured: Any  # what was measured (a status code, a ratio, the missing ids...)
    expected: str  # the condition, human-readable ("== 200", "< 1 %")
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        extra = f" — {self.detail}" if self.detail else ""
        return f"{verdict} {self.name}: measured {self.measured!r}, expected {self.expected}{extra}"


def require(*results: CheckResult) -> None:
    """Raise AssertionError naming every failing check (so JUnit's message names them)."""
    failed = [r for r in results if not r.passed]
    if failed:
        raise AssertionError("; ".join(r.line() for r in failed))
