"""Restoring nginx's pre-deployment configuration, with ``nginx -t`` before anything is loaded.

The backup is copied to a *candidate* beside ``nginx.conf`` and tested with ``nginx -t -c
<candidate>``; only a candidate that passes replaces ``nginx.conf`` and is reloaded. A config
that fails ``-t`` is never loaded and never even becomes ``nginx.conf``: the running nginx keeps
serving what it served, and a later restart of the container still finds a valid file (the
plan's ``cp ... nginx.conf && nginx -t && nginx -s reload`` would leave the broken file in place).
"""

from __future__ import annotations

from pathlib import Path

from rollback_drill import nginx_mount
from rollback_drill.errors import RollbackError
from rollback_drill.nginx_control import CANDIDATE_SUFFIX, reload_nginx
from rollback_drill.rollback.steps import PhaseRun

__all__ = ["restore_nginx_conf"]


def restore_nginx_conf(run: PhaseRun, backup: str) -> None:
    t = run.stack.target
    mounted = nginx_mount.mount_source(run.stack)
    if mounted is not None:
        _restore_mounted(run, mounted)
        return
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


def _restore_mounted(run: PhaseRun, mounted: Path) -> None:
    """The config is a file of the repository bind-mounted into nginx: its backup (a host
    file) is tested in a throwaway container, then written into that file and loaded."""
    stack = run.stack
    backup = nginx_mount.backup_path(stack)

    def test() -> str:
        res = nginx_mount.test_config(stack, backup)
        if not res.ok:
            raise RollbackError(
                f"phase {run.phase}: nginx -t rejected the restored config {backup} "
                f"({res.tail(1)}); it was not loaded, nginx keeps serving its current config"
            )
        return res.tail(2)

    run.action("nginx_test", f"nginx -t with {backup} (throwaway container)", test)
    run.action(
        "nginx_install",
        f"write {backup} into {mounted}; reload nginx (recreate it if it serves an older file)",
        lambda: nginx_mount.install(stack, mounted, backup),
    )
