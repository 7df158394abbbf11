"""The engine's exceptions.

    DrillError                    root: every error the engine raises on purpose
    ├── PolicyError               the policy file is malformed or contradictory
    ├── TargetError               the target description (compose file, service names) is wrong
    │   ├── NotOnThisTarget       a drill needs what the target lacks (it skips)
    │   └── NotReady              the readiness review found what will break a rollback
    ├── EnvironmentProblem        Docker daemon down, Compose missing, port in use...
    │   ├── ComposeMissing        ``docker compose`` (v2) is not installed
    │   └── PortInUse             a host port the target pins is already taken
    ├── StackError                the stack did not come up / a compose operation failed
    ├── BackupError               a backup is missing, incomplete or cannot be restored
    ├── LockHeld                  another deployment or rollback holds the deployment lock
    ├── FaultError                a fault could not be applied, or its effect was not seen
    └── RollbackError             a rollback step failed

Each carries a one-line message naming the cause; ``exit_code`` is the CLI's exit status.
"""

from __future__ import annotations


class DrillError(Exception):
    exit_code = 10


class PolicyError(DrillError):
    exit_code = 11


class TargetError(DrillError):
    exit_code = 12


class EnvironmentProblem(DrillError):
    exit_code = 13


class ComposeMissing(EnvironmentProblem):
    exit_code = 19


class PortInUse(EnvironmentProblem):
    exit_code = 20


class NotOnThisTarget(TargetError):
    """A drill or a trigger needs what this target does not have (a faulty release of the
    reference app, a category its traffic profile leaves out, a signal only an app exposes):
    the drill skips with this line, it never passes."""

    exit_code = 21


class NotReady(TargetError):
    """``check-target --deep`` found what will break a rollback (an error-level finding of
    :mod:`rollback_drill.readiness`): the findings are printed before this line."""

    exit_code = 22


class StackError(DrillError):
    exit_code = 14


class BackupError(DrillError):
    exit_code = 15


class LockHeld(DrillError):
    exit_code = 16


class FaultError(DrillError):
    exit_code = 17


class RollbackError(DrillError):
    exit_code = 18


class ProbeError(DrillError):
    """A probe (integrity, security) raised while it ran: its findings are no evidence."""

    exit_code = 23
