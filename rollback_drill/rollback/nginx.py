"""Restoring nginx's pre-deployment configuration, with ``nginx -t`` before anything is loaded.

The backup is copied to a *candidate* beside ``nginx.conf`` and tested with ``nginx -t -c
<candidate>``; only a candidate that passes replaces ``nginx.conf`` and is reloaded. A config
that fails ``-t`` is never loaded and never even becomes ``nginx.conf``: the running nginx keeps
serving what it served, and a later restart of the container still finds a valid file (the
plan's ``cp ... nginx.conf && nginx -t && nginx -s reload`` would leave the broken file in place).
"""

from __future__ import annotations

from rollback_drill.deploy import CANDIDATE_SUFFIX, reload_nginx
from rollback_drill.errors import RollbackError
from rollback_drill.rollback.steps import PhaseRun

__all__ = ["restore_nginx_conf"]


def restore_nginx_conf(run: PhaseRun, backup: str) -> None:
    t = run.stack.target
    nginx, conf = t.services.nginx, t.paths.nginx_conf
    candidate = conf + CANDIDATE_SUFFIX
    run.exec("nginx_restore", nginx, "cp", backup, candidate)
    test = run.exec("nginx_test", nginx, "nginx", "-t", "-q", "-c", candidate, check=False)
    if not test.ok:
        run.exec("nginx_discard", nginx, "rm", "-f", candidate, check=False)
        raise RollbackError(
            f"phase {run.phase}: nginx -t rejected the restored config {backup} "
            f"({test.tail(1)}); it was not loaded, nginx keeps serving its current config"
        )
    run.exec("nginx_swap", nginx, "mv", candidate, conf)

    def reload() -> str:
        reload_nginx(run.stack, drain=False)
        return "new workers serving (old ones finish their requests in flight)"

    run.action("nginx_reload", "nginx -s reload; poll until new workers serve", reload)
