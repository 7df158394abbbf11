"""rollback_drill: the engine of the rollback drill suite (no pytest in here)."""

from __future__ import annotations

from rollback_drill.errors import (
    BackupError,
    DrillError,
    EnvironmentProblem,
    FaultError,
    LockHeld,
    PolicyError,
    RollbackError,
    StackError,
    TargetError,
)

__all__ = [
    "BackupError",
    "DrillError",
    "EnvironmentProblem",
    "FaultError",
    "LockHeld",
    "PolicyError",
    "RollbackError",
    "StackError",
    "TargetError",
]
