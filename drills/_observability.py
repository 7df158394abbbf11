"""Infrastructure drills on any target: a trigger this target cannot show is skipped, saying why."""

from __future__ import annotations

from typing import NoReturn

import pytest

from rollback_drill.metrics import Metric, ScopeKind
from rollback_drill.policy import Policy
from rollback_drill.target import Target

from ._verdicts import RecordProperty


def not_observable(record_property: RecordProperty, why: str) -> NoReturn:
    """Skip a drill whose signal this target cannot give, saying why -- never a pass."""
    record_property("observability", "not observable")
    pytest.skip(f"not observable on this target: {why}")


def observability_gap(target: Target, policy: Policy, trigger: str, role: str) -> str | None:
    """Why the shipped monitor cannot read ``trigger`` on this target when the fault hits the
    service of ``role``, or None when it can. Looks at what the monitor's sources need: a
    service scope must name the target's service, a category scope a category its traffic
    profile sends, a DB/Redis connection-failure metric the app's failure-cause header or its
    black-box source (``signals.connection_failures``: Redis INFO and the load for Redis,
    PostgreSQL's log in its container output and the load for the database)."""
    rule = policy.rule(trigger)
    service = target.service(role)
    names = rule.scope.names_given()
    read = {target.service(n) for n in names}  # a scope names a role or a service
    if rule.scope.kind in (ScopeKind.SERVICE, ScopeKind.SERVICES) and service not in read:
        return (
            f"the policy's {trigger} reads {rule.metric} of {list(names)}, and this "
            f"target's {role} service is {service!r}"
        )
    if rule.scope.is_category():
        sent = target.traffic.observable()
        if not set(names) & sent:
            return f"{trigger} reads categories {list(names)}; the profile sends {sorted(sent)}"
    if (
        rule.metric == Metric.DB_CONNECTION_FAILURE_RATE
        and target.traffic.headers.failure_cause is None
        and not target.signals.postgres_log
    ):
        return (
            f"the monitor counts {rule.metric} from the app's failure-cause answer header, "
            "which this target's traffic profile names not (traffic.headers.failure_cause), "
            "or from PostgreSQL's log in its container output, which this target says holds "
            "none (signals.postgres_log: false)"
        )
    return None
