"""Readiness review: what in a target's files and in the plan will break a rollback, found
before anything is deployed (``rollback-drill check-target --deep``).

In a private workspace (the releases as commits, :mod:`rollback_drill.workspace`), for the
previous and the next release, one module a concern:

- :mod:`~rollback_drill.readiness.compose_config`: ``docker compose config`` of the team's own
  files resolves, no variable unset or empty, every build context, Dockerfile, bind-mounted file
  and image is here;
- :mod:`~rollback_drill.readiness.nginx`: rate and connection limits below the drill's load,
  ``nginx -t`` in a throwaway container of the target's nginx image;
- :mod:`~rollback_drill.readiness.settings`: ports beyond loopback, fixed ``container_name``s,
  restart policies that undo Phase 1's stop, roles without a health check;
- :mod:`~rollback_drill.readiness.plan`: the files the plan's rollback reads vs the files its
  backup procedure writes, the services and the health path its scripts name;
- :mod:`~rollback_drill.readiness.live` (``start``): the previous release up, its health paths,
  the traffic profile's categories and the backup procedure run for real.

:mod:`~rollback_drill.readiness.findings` holds what they find (a :class:`Finding`: severity,
file and line, the plan step it breaks, the fix), :mod:`~rollback_drill.readiness.release` where
a workspace file and a YAML key come from, :mod:`~rollback_drill.readiness.entry` the entry
points. Error findings make ``check-target --deep`` exit with
:class:`~rollback_drill.errors.NotReady`'s status.
"""

from rollback_drill.readiness.entry import DEFAULT_LOAD_RATE, check_deep, review
from rollback_drill.readiness.findings import Finding, Review

__all__ = ["DEFAULT_LOAD_RATE", "Finding", "Review", "check_deep", "review"]
