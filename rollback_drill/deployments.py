"""Finding and stopping a deployment that is still rolling -- the plan's Phase 1, "Stop any
ongoing deployment".

A deployment run by this suite (:func:`rollback_drill.deploy.deploy_release`, in this process
or another on this host) leaves a :class:`DeploymentRecord` in the stack's state directory
while it runs: release, pid, host and the process's start time, a token, the app services it
updates and the containers they had before it began. Stopping it (:func:`stop_deployment`):

1. a stop request naming its token is written beside the record; the deployment looks for it
   between its steps and while it waits for new containers, and ends (``DeploymentStopped``);
2. its ``docker compose`` processes -- found by the token in their environment, which only
   this suite puts there; each runs in a process group of its own -- get SIGTERM, then SIGKILL
   after a grace period: a build or ``up`` in flight ends now, not at its next step;
3. once the deployment's record says it ended (or its process is gone), the containers of its
   services that it created -- not among those the record lists from before -- are stopped and
   removed: the half-deployed release's containers. Their image is named in the report.

Nothing else is signalled or removed: no process without the token, no container that
existed before the deployment began.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollback_drill.lock import process_start

if TYPE_CHECKING:
    from rollback_drill.stack import Stack

__all__ = [
    "RECORD_NAME",
    "STOP_NAME",
    "TOKEN_ENV",
    "DeploymentRecord",
    "StopReport",
    "record_path",
    "request_stop",
    "running_deployment",
    "stop_deployment",
    "stop_request",
    "token_processes",
]

TOKEN_ENV = "RBD_DEPLOYMENT"
RECORD_NAME = "deployment.json"
STOP_NAME = "deployment.stop"
TERM_GRACE_S = 5.0


def record_path(state_dir: Path) -> Path:
    return state_dir / RECORD_NAME


@dataclass
class DeploymentRecord:
    token: str
    release: str
    pid: int
    started: str  # the process's start time (lock.process_start)
    host: str
    since: float
    project: str
    services: list[str]
    containers_before: dict[str, list[str]]
    status: str = "running"  # running / finished / stopped / failed
    ended: float = 0.0

    @classmethod
    def of_this_process(
        cls, token: str, release: str, project: str, before: dict[str, list[str]]
    ) -> DeploymentRecord:
        """The record of a deployment this process runs: ``before`` lists, per app service,
        the containers it had when the deployment began."""
        pid = os.getpid()
        return cls(
            token,
            release,
            pid,
            process_start(pid),
            socket.gethostname(),
            time.time(),
            project,
            list(before),
            before,
        )

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, path)  # a reader never sees half a record

    def finish(self, path: Path, status: str) -> None:
        self.status, self.ended = status, time.time()
        current = DeploymentRecord.load(path)
        if current is None or current.token == self.token:  # a later deployment's is kept
            self.save(path)

    @classmethod
    def load(cls, path: Path) -> DeploymentRecord | None:
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            return cls(**data)
        except (OSError, ValueError, TypeError):
            return None

    def process_alive(self) -> bool:
        now = process_start(self.pid)
        return bool(now) and (not self.started or now == self.started)

    @property
    def running(self) -> bool:
        return self.status == "running" and self.process_alive()

    def describe(self) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(self.since))
        return f"deployment of {self.release} (pid {self.pid} on {self.host}, since {stamp})"


def request_stop(state_dir: Path, token: str, by: str) -> None:
    path = state_dir / STOP_NAME
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"token": token, "by": by, "at": time.time()}))
    os.replace(tmp, path)


def stop_request(state_dir: Path, token: str) -> str | None:
    """Who asked to stop the deployment ``token``, or None when nobody did."""
    try:
        data = json.loads((state_dir / STOP_NAME).read_text())
    except (OSError, ValueError):
        return None
    return str(data.get("by", "?")) if data.get("token") == token else None


def running_deployment(stack: Stack) -> DeploymentRecord | None:
    """The suite's deployment of this stack still rolling on this host, if any."""
    record = DeploymentRecord.load(record_path(stack.workspace.state_dir))
    return record if record is not None and record.running else None


def token_processes(token: str) -> dict[int, str]:
    """pid -> command line of every process carrying ``token`` in its environment."""
    needle = f"{TOKEN_ENV}={token}".encode()
    found: dict[int, str] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if needle not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found[int(proc.name)] = cmd.strip()
    return found


def _signal(pids: dict[int, str], sig: signal.Signals) -> None:
    groups = {pid for pid in pids if _pgid(pid) == pid}  # leaders of the groups we started
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if pid in groups:
                os.killpg(pid, sig)
            elif _pgid(pid) not in groups:
                os.kill(pid, sig)


def _pgid(pid: int) -> int:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return -1


@dataclass
class StopReport:
    deployment: str
    killed: list[str] = field(default_factory=list)  # "pid: command line"
    removed: list[str] = field(default_factory=list)  # "name (image)"
    ended_as: str = ""
    took_s: float = 0.0

    def describe(self) -> str:
        parts = [f"stopped {self.deployment} ({self.ended_as or 'gone'})"]
        parts.append(
            f"{len(self.killed)} compose process(es) signalled"
            + (f": {'; '.join(self.killed[:4])}" if self.killed else "")
        )
        parts.append(
            f"{len(self.removed)} container(s) of the half-deployed release removed"
            + (f": {', '.join(self.removed)}" if self.removed else "")
        )
        return "; ".join(parts)


def stop_deployment(
    stack: Stack, record: DeploymentRecord, by: str, *, timeout_s: float = 20.0
) -> StopReport:
    """Stop ``record``'s deployment and remove the containers it created (module docstring).
    Raises :class:`TimeoutError` naming what still runs when it does not end in ``timeout_s``."""
    start = time.monotonic()
    state_dir = stack.workspace.state_dir
    report = StopReport(record.describe())
    request_stop(state_dir, record.token, by)
    procs = token_processes(record.token)
    report.killed = [f"{pid}: {cmd[:160]}" for pid, cmd in sorted(procs.items())]
    _signal(procs, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    killed_hard = False
    while True:
        left = token_processes(record.token)
        current = DeploymentRecord.load(record_path(state_dir))
        ended = current is None or current.token != record.token or not current.running
        if not left and ended:
            report.ended_as = current.status if current is not None else "gone"
            break
        if time.monotonic() - start > TERM_GRACE_S and left and not killed_hard:
            _signal(left, signal.SIGKILL)
            killed_hard = True
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{record.describe()} did not stop within {timeout_s:.0f} s: "
                f"{'processes ' + ', '.join(map(str, left)) if left else 'it never ended'}"
            )
        time.sleep(0.2)
    report.removed = remove_new_containers(stack, record)
    report.took_s = time.monotonic() - start
    return report


def remove_new_containers(stack: Stack, record: DeploymentRecord) -> list[str]:
    """Stop and remove the containers of ``record``'s services that it created."""
    removed: list[str] = []
    for _ in range(3):  # a create the daemon finished after the CLI died shows up late
        fresh = [
            c
            for service in record.services
            for c in stack.containers(service)
            if c.id not in set(record.containers_before.get(service, []))
        ]
        if not fresh:
            break
        for c in fresh:
            image = (c.attrs.get("Config", {}) or {}).get("Image", "") or c.attrs.get("Image", "")
            with contextlib.suppress(Exception):
                c.stop(timeout=5)
            c.remove(v=True, force=True)
            removed.append(f"{c.name} ({image})")
    stack.forget_ports()
    return removed
