"""Fault injectors: push the stack past a trigger of the plan (or just short of it).

=====================  =========================================================================
``base``               the protocol: apply / verify_effect / revert, journaled and idempotent
``release``            a faulty hybrid release built as a real commit and deployed for real
``faulty_releases``    the catalogue of faulty releases (crash loop, leak, session mismatch...)
``containers``         stop, kill, pause, pause cycle, restart, crash, CPU quota, memory limit
``network``            drop / reset packets in a container's network namespace (iptables)
``datastores``         Redis and PostgreSQL connection kill and exhaustion
``complaints``         support tickets filed through the ticket signal's HTTP or file input
``probes``             integrity and security probes feeding the monitor's findings
=====================  =========================================================================

Two families: *release* faults need the target's overlays (the reference stack has them);
*infrastructure* faults need only Docker, so they also work against a team's own stack.
"""

from __future__ import annotations

from rollback_drill.faults.base import BaseFault, Effect, Fault, injected
from rollback_drill.faults.complaints import TicketSpike
from rollback_drill.faults.containers import (
    CpuQuota,
    CrashProcess,
    KillContainers,
    MemoryLimit,
    PauseContainers,
    PauseCycle,
    RestartContainers,
    StopContainers,
)
from rollback_drill.faults.datastores import (
    PostgresConnectionExhaustion,
    PostgresTerminate,
    RedisClientKill,
    RedisConnectionExhaustion,
)
from rollback_drill.faults.network import PacketFault
from rollback_drill.faults.probes import ProbeLoop, SecurityProbe, integrity_probe
from rollback_drill.faults.release import FaultyRelease, build_release

__all__ = [
    "BaseFault",
    "CpuQuota",
    "CrashProcess",
    "Effect",
    "Fault",
    "FaultyRelease",
    "KillContainers",
    "MemoryLimit",
    "PacketFault",
    "PauseContainers",
    "PauseCycle",
    "PostgresConnectionExhaustion",
    "PostgresTerminate",
    "ProbeLoop",
    "RedisClientKill",
    "RedisConnectionExhaustion",
    "RestartContainers",
    "SecurityProbe",
    "StopContainers",
    "TicketSpike",
    "build_release",
    "injected",
    "integrity_probe",
]
