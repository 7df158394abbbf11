"""Packet faults inside a container's network namespace: drop, or reset connections.

This kernel has no ``netem``, so no latency or loss *rate* shaping; what iptables offers is
enough for the plan's failure modes: ``DROP`` (the peer hangs until its timeout) or ``REJECT
--reject-with tcp-reset`` (the connection fails at once), on a TCP port, in or out of the
container, for every packet or exactly every ``every``-th one (``-m statistic --mode nth``,
deterministic), optionally only on established connections (connections that were working
break mid-way, new ones still open).

The rule goes into the target container's own network namespace from the Docker host
(``nsenter -t <container pid> -n iptables ...``): nothing is installed in the container, the
host's own firewall is untouched, and the rule disappears with the container at the latest.
Each rule carries a comment naming the fault, so the revert deletes exactly it. Needs root on
the Docker host with ``nsenter`` and ``iptables``; :class:`FaultError` says so otherwise.
The rule's packet counter is the proof that it matched traffic.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from typing import Any, Literal

from rollback_drill.errors import FaultError
from rollback_drill.faults.base import Effect
from rollback_drill.faults.containers import ServiceFault
from rollback_drill.stack import Stack

__all__ = ["PacketFault", "rule_spec"]

Direction = Literal["in", "out"]
Action = Literal["drop", "reset"]


def rule_spec(
    *,
    port: int,
    direction: Direction,
    action: Action,
    every: int = 1,
    established_only: bool = False,
    comment: str,
) -> tuple[str, list[str]]:
    """The iptables chain and rule arguments (without ``-I``/``-D``) for a packet fault."""
    if not 0 < port < 65536:
        raise ValueError(f"port must be 1..65535, not {port}")
    if every < 1:
        raise ValueError(f"every must be >= 1, not {every}")
    chain = "INPUT" if direction == "in" else "OUTPUT"
    args = ["-p", "tcp", "--dport", str(port)]
    if established_only:
        args += ["-m", "conntrack", "--ctstate", "ESTABLISHED"]
    if every > 1:
        args += ["-m", "statistic", "--mode", "nth", "--every", str(every), "--packet", "0"]
    args += ["-m", "comment", "--comment", comment]
    if action == "drop":
        args += ["-j", "DROP"]
    else:
        args += ["-j", "REJECT", "--reject-with", "tcp-reset"]
    return chain, args


class PacketFault(ServiceFault):
    """Drop or reset TCP packets to ``port`` in (``direction="in"``: the service's own port)
    or out of (``"out"``: e.g. PostgreSQL's 5432 as seen from the app) every container."""

    def __init__(
        self,
        stack: Stack,
        service: str,
        *,
        port: int,
        direction: Direction = "in",
        action: Action = "reset",
        every: int = 1,
        established_only: bool = False,
        **kw: Any,
    ) -> None:
        super().__init__(
            stack,
            service,
            port=port,
            direction=direction,
            action=action,
            every=every,
            established_only=established_only,
            **kw,
        )
        self.comment = f"rbd-fault-{stack.workspace.run_id}-{secrets.token_hex(3)}"
        self.chain, self.args = rule_spec(
            port=port,
            direction=direction,
            action=action,
            every=every,
            established_only=established_only,
            comment=self.comment,
        )
        self.pids: dict[str, int] = {}

    def _apply(self) -> float | None:
        _require_tools()
        self.targets = self.running()
        for c in self.targets:
            pid = int(c.attrs["State"].get("Pid") or 0)
            if pid <= 0:
                raise FaultError(f"{self.name}: container {c.name} has no host PID")
            self.pids[c.id] = pid
            _iptables(pid, "-I", self.chain, "1", *self.args)
        return None

    def _revert(self) -> None:
        for cid, pid in list(self.pids.items()):
            if os.path.exists(f"/proc/{pid}/ns/net"):
                _iptables(pid, "-D", self.chain, *self.args, check=False)
            del self.pids[cid]
        self.targets = []

    def matched_packets(self) -> dict[int, int]:
        """Packets each container's rule has matched so far (pid -> count)."""
        out: dict[int, int] = {}
        for pid in self.pids.values():
            listing = _iptables(pid, "-L", self.chain, "-v", "-n", "-x", check=False)
            for line in listing.splitlines():
                if self.comment in line:
                    out[pid] = int(line.split()[0])
        return out

    def observe(self) -> Effect:
        counts = self.matched_packets()
        ok = bool(counts) and all(n > 0 for n in counts.values())
        return Effect(ok, counts, "the rule matched packets in every container's namespace")


def _require_tools() -> None:
    missing = [t for t in ("nsenter", "iptables") if shutil.which(t) is None]
    if missing:
        raise FaultError(f"packet faults need {' and '.join(missing)} on the Docker host")
    if os.geteuid() != 0:
        raise FaultError("packet faults need root on the Docker host (nsenter into a netns)")


def _iptables(pid: int, *args: str, check: bool = True) -> str:
    cmd = ["nsenter", "-t", str(pid), "-n", "iptables", "-w", "5", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    if check and proc.returncode != 0:
        raise FaultError(f"{' '.join(cmd)} failed: {proc.stderr.strip()[:200]}")
    return proc.stdout
