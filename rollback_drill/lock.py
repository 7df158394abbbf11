"""The deployment lock: the plan's ``touch /tmp/deployment.lock``, per stack and atomic.

A lock file whose content names its holder (what holds it, pid, host, since when). It is
created atomically -- written in full to a private temporary file, then hard-linked into place,
which fails when the lock exists -- so two deployments or drills racing for it cannot both win
and a reader never sees a half-written holder. A holder that finds it taken gets
:class:`~rollback_drill.errors.LockHeld` naming the other holder, and changes nothing.

Phase 1 of a rollback takes it ("prevent new deployments") and, as in the plan, it stays held
after the rollback until someone releases it; a guarded deployment holds it while it runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rollback_drill.errors import LockHeld

if TYPE_CHECKING:
    from rollback_drill.stack import Stack

LOCK_NAME = "deployment.lock"

__all__ = ["LOCK_NAME", "DeploymentLock", "LockInfo"]


@dataclass(frozen=True)
class LockInfo:
    holder: str
    pid: int
    host: str
    since: float  # epoch seconds

    def describe(self) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(self.since))
        return f"{self.holder} (pid {self.pid} on {self.host}, since {stamp})"


class DeploymentLock:
    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def for_stack(cls, stack: Stack) -> DeploymentLock:
        """The lock of one stack: in its workspace's state directory."""
        return cls(stack.workspace.state_dir / LOCK_NAME)

    def acquire(self, holder: str) -> LockInfo:
        """Take the lock for ``holder`` or raise :class:`LockHeld` naming who has it."""
        info = LockInfo(holder, os.getpid(), socket.gethostname(), time.time())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".lock-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(asdict(info), fh)
            try:
                os.link(tmp, self.path)  # atomic; fails if the lock exists
            except FileExistsError:
                other = self.holder()
                who = other.describe() if other is not None else "another holder"
                raise LockHeld(f"deployment lock {self.path} is held by {who}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return info

    def holder(self) -> LockInfo | None:
        """Who holds the lock, or None when it is free."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (ValueError, OSError):
            return LockInfo("an unknown holder (unreadable lock file)", 0, "?", 0.0)
        return LockInfo(
            str(data.get("holder", "?")),
            int(data.get("pid", 0)),
            str(data.get("host", "?")),
            float(data.get("since", 0.0)),
        )

    @property
    def is_held(self) -> bool:
        return self.path.exists()

    def release(self, info: LockInfo) -> None:
        """Release a lock this holder took; a lock now held by someone else is left alone."""
        current = self.holder()
        if current is None:
            return
        if (current.holder, current.pid, current.since) != (info.holder, info.pid, info.since):
            raise LockHeld(f"deployment lock {self.path} is now held by {current.describe()}")
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def force_release(self) -> LockInfo | None:
        """An operator's removal of the lock (the plan's "unlock"); returns who held it."""
        current = self.holder()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        return current

    @contextlib.contextmanager
    def held(self, holder: str) -> Iterator[LockInfo]:
        """Hold the lock for the block; released on exit, also after an exception."""
        info = self.acquire(holder)
        try:
            yield info
        finally:
            self.release(info)
