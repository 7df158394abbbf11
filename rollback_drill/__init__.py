"""rollback_drill: the engine of the rollback drill suite (no pytest in here)."""

from __future__ import annotations

from rollback_drill.errors import (
    BackupError,
    ComposeMissing,
    DrillError,
    EnvironmentProblem,
    FaultError,
    LockHeld,
    PolicyError,
    PortInUse,
    RollbackError,
    StackError,
    TargetError,
)

__all__ = [
    "BackupError",
    "ComposeMissing",
    "DrillError",
    "EnvironmentProblem",
    "FaultError",
    "LockHeld",
    "PolicyError",
    "PortInUse",
    "RollbackError",
    "StackError",
    "TargetError",
]
