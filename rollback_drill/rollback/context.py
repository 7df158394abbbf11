"""What a rollback carries from phase to phase: the stack, its policy, backups, lock, sink and
defects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rollback_drill.announce import Announcement, AnnouncementSink
from rollback_drill.backup import BackupSet, load_backups
from rollback_drill.defects import DefectLog
from rollback_drill.ledger import Ledger
from rollback_drill.lock import DeploymentLock, LockInfo
from rollback_drill.policy import Policy, default_policy
from rollback_drill.stack import Stack

if TYPE_CHECKING:
    from rollback_drill.rollback.result import RollbackResult

__all__ = ["RollbackContext"]


@dataclass
class RollbackContext:
    """The inputs of a rollback and the state its phases hand on.

    ``probe_plan``: before the corrected step, run (or dry-run) the plan's step as written where
    that is harmless, and record a plan defect when it fails -- the drills' default; set it to
    False to run only the corrected steps.

    ``policy`` gives the numbers the rollback is judged by: each phase's budget, the success
    criterion (the announcement's expected completion) and the status-update interval (scaled
    by its ``time_scale``, like the drill that runs the rollback). Default: the shipped policy.

    ``fallback``: when a phase fails, fall back to Phase 5 (the plan's "If Above Fails").
    ``ledger``: the load's write ledger, if any: Phase 5's data-loss window is then counted in
    acknowledged writes (else in the rows the target's read-back queries select).
    """

    stack: Stack
    reason: str
    sink: AnnouncementSink
    defects: DefectLog
    backups: BackupSet | None = None
    holder: str = "rollback"
    probe_plan: bool = True
    policy: Policy = field(default_factory=default_policy)
    fallback: bool = True
    ledger: Ledger | None = None
    sequence: tuple[int, ...] = ()  # set by the executor
    # state handed from phase to phase
    lock_info: LockInfo | None = None
    announcement: Announcement | None = None
    code_rolled_back: bool = False
    observed: list[str] = field(default_factory=list)
    # the rollback's result as it runs, also when it fails (the report's Lessons Learned)
    result: RollbackResult | None = None
    stopped: list[str] = field(default_factory=list)  # what Phase 1 stopped or took over

    @property
    def label(self) -> str:
        return "→".join(map(str, self.sequence))

    @property
    def lock(self) -> DeploymentLock:
        return DeploymentLock.for_stack(self.stack)

    def backup_set(self) -> BackupSet:
        """The stack's backup set (from its manifest unless given)."""
        if self.backups is None:
            self.backups = load_backups(self.stack)
        return self.backups
