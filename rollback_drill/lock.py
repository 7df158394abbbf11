"""The deployment lock: the plan's ``touch /tmp/deployment.lock``, per stack and atomic.

A lock file whose content names its holder (what holds it, pid, host, since when, and -- for a
deployment -- the token its ``docker compose`` processes carry and the release it deploys). It
is created atomically -- written in full to a private temporary file, then hard-linked into
place, which fails when the lock exists -- so two deployments or drills racing for it cannot
both win and a reader never sees a half-written holder. A holder that finds it taken gets
:class:`~rollback_drill.errors.LockHeld` naming the other holder, and changes nothing.

Phase 1 of a rollback takes it ("prevent new deployments") and, as in the plan, it stays held
after the rollback until someone releases it; a guarded deployment holds it while it runs.
Phase 1 may also :meth:`DeploymentLock.take_over` the lock: from a deployment it has just
stopped, or from a holder whose process is gone (:meth:`LockInfo.alive`: same host, the pid
running, and started when the lock says -- a reused pid is not the holder). A take-over is
serialised by an ``flock`` on a guard file beside the lock, and checks under it that the lock
still names the holder it means to replace.
"""

from __future__ import annotations

import contextlib
import fcntl
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
GUARD_SUFFIX = ".guard"

__all__ = ["LOCK_NAME", "DeploymentLock", "LockInfo", "process_start"]


def process_start(pid: int) -> str:
    """The start time of process ``pid`` (clock ticks since boot, from ``/proc``), "" if none:
    with the pid it names one process, whatever pid reuse happens later."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # the fields after the command name (which may hold spaces and parentheses)
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else ""


@dataclass(frozen=True)
class LockInfo:
    holder: str
    pid: int
    host: str
    since: float  # epoch seconds
    started: str = ""  # the holder process's start time (process_start), "" if unknown
    token: str = ""  # a deployment's token: its compose processes carry it (deploy.py)
    release: str = ""  # the release a deployment deploys

    @classmethod
    def mine(cls, holder: str, *, token: str = "", release: str = "") -> LockInfo:
        pid = os.getpid()
        return cls(
            holder, pid, socket.gethostname(), time.time(), process_start(pid), token, release
        )

    @property
    def is_deployment(self) -> bool:
        return bool(self.token)

    @property
    def on_this_host(self) -> bool:
        return self.host == socket.gethostname()

    def alive(self) -> bool | None:
        """Whether the holder's process still runs: None when that cannot be told here (another
        host, an unreadable lock)."""
        if not self.on_this_host or self.pid <= 0:
            return None
        now = process_start(self.pid)
        if not now:
            return False
        return not self.started or now == self.started

    def same_holder(self, other: LockInfo) -> bool:
        return (self.holder, self.pid, self.since) == (other.holder, other.pid, other.since)

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

    def acquire(self, holder: str, *, token: str = "", release: str = "") -> LockInfo:
        """Take the lock for ``holder`` or raise :class:`LockHeld` naming who has it."""
        info = LockInfo.mine(holder, token=token, release=release)
        if not self._link(info):
            other = self.holder()
            who = other.describe() if other is not None else "another holder"
            raise LockHeld(f"deployment lock {self.path} is held by {who}")
        return info

    def take_over(self, holder: str, previous: LockInfo) -> LockInfo:
        """Replace ``previous`` (a holder that is gone or was stopped) as the lock's holder.
        :class:`LockHeld` when the lock names someone else by now; a lock freed meanwhile is
        simply taken."""
        with self._guard():
            current = self.holder()
            if current is not None and not current.same_holder(previous):
                raise LockHeld(f"deployment lock {self.path} is now held by {current.describe()}")
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            return self.acquire(holder)

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
            str(data.get("started", "")),
            str(data.get("token", "")),
            str(data.get("release", "")),
        )

    @property
    def is_held(self) -> bool:
        return self.path.exists()

    def release(self, info: LockInfo, *, taken_over_ok: bool = False) -> None:
        """Release a lock this holder took; a lock now held by someone else is left alone
        (and said, unless ``taken_over_ok``: a rollback that stopped this holder keeps it)."""
        with self._guard():
            current = self.holder()
            if current is None:
                return
            if not current.same_holder(info):
                if taken_over_ok:
                    return
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
    def held(self, holder: str, *, token: str = "", release: str = "") -> Iterator[LockInfo]:
        """Hold the lock for the block; released on exit, also after an exception. A lock a
        rollback took over meanwhile (it stopped this holder) stays with the rollback."""
        info = self.acquire(holder, token=token, release=release)
        try:
            yield info
        finally:  # checked under the lock's guard: a takeover between check and unlink stays
            self.release(info, taken_over_ok=True)

    # ---- internals ------------------------------------------------------------------------
    def _link(self, info: LockInfo) -> bool:
        """Write ``info`` into place atomically; False when the lock exists."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".lock-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(asdict(info), fh)
            try:
                os.link(tmp, self.path)  # atomic; fails if the lock exists
            except FileExistsError:
                return False
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return True

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Serialise the read-then-remove of a take-over or release (an ``flock``)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        guard = self.path.with_name(self.path.name + GUARD_SUFFIX)
        with open(guard, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
