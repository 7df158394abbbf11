"""nginx inside its container: a graceful reload that waits for it, and the worker processes.

Shared by deployments (``deploy``), bind-mounted configs (``nginx_mount``) and the rollback's
config restore (``rollback.nginx``), which import it and not each other.
"""

from __future__ import annotations

from rollback_drill.stack import Stack
from rollback_drill.wait import wait_for

__all__ = ["CANDIDATE_SUFFIX", "nginx_workers", "reload_nginx"]

CANDIDATE_SUFFIX = ".candidate"  # a config copied beside the live one until ``nginx -t`` passes


def reload_nginx(stack: Stack, timeout_s: float = 30.0, *, drain: bool = True) -> None:
    """``nginx -s reload``, then poll until no old-generation worker is left serving.

    A reload is asynchronous: old workers keep serving their open (keep-alive) connections
    with the old configuration until they finish, so "reloaded" means none is shutting down.
    """
    nginx = stack.target.services.nginx
    before = nginx_workers(stack)
    stack.exec(nginx, "nginx", "-s", "reload")

    # ``nginx -s reload`` only signals the master and returns: "reloaded" needs a worker of the
    # new generation (a pid not seen before) and none of the old one still serving.
    # With ``drain=False`` a new generation suffices: old workers no longer accept connections
    # and close their idle keep-alive ones, they only finish requests already in flight.
    def reloaded(workers: dict[int, str]) -> bool:
        new = [pid for pid in workers if pid not in before]
        draining = any("shutting down" in t for t in workers.values())
        return bool(new) and not (drain and draining)

    wait_for(
        lambda: nginx_workers(stack),
        reloaded,
        timeout_s=timeout_s,
        what="nginx to start new workers and finish the old ones after reload",
        interval_s=0.2,
        hint="a reload the master rejected leaves the old workers: see `docker compose logs nginx`",
    )


def nginx_workers(stack: Stack) -> dict[int, str]:
    """The nginx container's worker processes: pid -> process title."""
    listing = (
        "for p in /proc/[0-9]*; do printf '%s ' ${p#/proc/}; "
        "tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done"
    )
    out = stack.exec(stack.target.services.nginx, "sh", "-c", listing, check=False).stdout
    workers: dict[int, str] = {}
    for line in out.splitlines():
        pid, _, title = line.partition(" ")
        if pid.isdigit() and "worker process" in title:
            workers[int(pid)] = title.strip()
    return workers
