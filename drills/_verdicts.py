"""The plan's verdict for each trigger, written out from the plan (not read from the policy, so
that a policy drifting from the plan fails the drill instead of redefining it), and the type of
pytest's ``record_property``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rollback_drill.decisions import DecisionKind

RecordProperty = Callable[[str, object], None]
"""pytest's ``record_property`` fixture (it exports no type for it)."""


ROLLBACK = frozenset({DecisionKind.ROLLBACK, DecisionKind.ESCALATED})


DEFERRED = frozenset({DecisionKind.DEFERRED})


@dataclass(frozen=True)
class Verdict:
    """What the plan (as the policy resolves it) must decide for a trigger."""

    severity: str
    action: str
    kinds: frozenset[DecisionKind]


# The plan's triggers and their verdicts, written out here -- not read from policy.yaml -- so
# that a policy that drifts from the plan fails the drill instead of redefining it.
PLAN: dict[str, Verdict] = {
    "error_rate": Verdict("critical", "immediate_rollback", ROLLBACK),
    "service_unavailable": Verdict("critical", "immediate_rollback", ROLLBACK),
    "data_corruption": Verdict("critical", "immediate_rollback", ROLLBACK),
    "security_exposure": Verdict("critical", "immediate_rollback", ROLLBACK),
    "db_connection_failures": Verdict("critical", "immediate_rollback", ROLLBACK),
    # high triggers the matrix makes immediate (resolution: the stricter wins)
    "wsgi_p95_latency": Verdict("high", "immediate_rollback", ROLLBACK),
    "asgi_restarts": Verdict("high", "immediate_rollback", ROLLBACK),
    "auth_failures": Verdict("high", "immediate_rollback", ROLLBACK),
    # high triggers: "rollback within 15 minutes"
    "memory_leak": Verdict("high", "rollback_within", ROLLBACK),
    "redis_connection_failures": Verdict("high", "rollback_within", ROLLBACK),
    # medium triggers: "evaluate for rollback"
    "performance_degradation": Verdict("medium", "evaluate", DEFERRED),
    "websocket_disconnects": Verdict("medium", "evaluate", DEFERRED),
    "cache_hit_drop": Verdict("medium", "evaluate", DEFERRED),
    "user_complaints": Verdict("medium", "evaluate", DEFERRED),
    # matrix rows that are not triggers
    "error_rate_evaluate": Verdict("medium", "evaluate", DEFERRED),
    "error_rate_monitor": Verdict("low", "monitor", frozenset({DecisionKind.MONITOR})),
}
