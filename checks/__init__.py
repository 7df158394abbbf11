"""The plan's validation checklist and success criteria as named checks with evidence."""

from rollback_drill.checks.base import CheckResult, require

__all__ = ["CheckResult", "require"]
