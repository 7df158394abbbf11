"""Phase 2, Quick Rollback -- configuration only (2 minutes).

1. restore the pre-deployment nginx config (``nginx.conf.pre-hybrid.bak``), ``nginx -t`` before
   it is loaded (see :mod:`rollback_drill.rollback.nginx`), reload;
2. stop ``backend-asgi``;
3. "Scale up WSGI containers (if scaled down)" -- the plan's ``docker-compose up -d --scale
   backend-wsgi=4`` names no service, so it starts every service, the ASGI just stopped
   included (plan defect ``phase2-up-restarts-asgi``, shown with ``--dry-run`` of the plan's
   line as written); the executor scales only ``backend-wsgi`` (``--no-deps``) and waits for
   the replicas to be healthy. How many: the plan's 4 is a production host's count; the
   target's ``rollback.phase2_wsgi_replicas`` (default 4) states what the team's host runs
   the previous release with, and Phase 2 never scales below the replicas running when it
   starts. The step ``wsgi_replicas`` records the count and why, before ``scale_wsgi`` runs
   it. (The reference target sets 1: with the plan's 4 the 1->2 path alone ended on a
   topology its 1-replica baseline was never read on; bench/phase2_replicas.py.)
4. health check through nginx; 5. the last 100 lines of ``backend-wsgi``'s logs.
"""

from __future__ import annotations

from rollback_drill.defects import evidence_of
from rollback_drill.rollback.nginx import restore_nginx_conf
from rollback_drill.rollback.steps import PhaseRun
from rollback_drill.target import Target
from rollback_drill.wait import wait_until

__all__ = ["PLAN_WSGI_REPLICAS", "config_rollback", "wsgi_replicas"]

PLAN_WSGI_REPLICAS = 4  # the plan's --scale backend-wsgi=4
LOG_LINES = 100


def config_rollback(run: PhaseRun) -> None:
    stack, t = run.stack, run.stack.target
    s = t.services
    restore_nginx_conf(run, t.paths.nginx_conf_backup)
    run.compose("stop_asgi", "stop", s.asgi)
    if run.ctx.probe_plan:
        probe_scale_as_written(run)
    running = sum(1 for c in stack.containers(s.wsgi) if c.status == "running")
    replicas, why = wsgi_replicas(t, running)
    run.action("wsgi_replicas", f"{s.wsgi} replicas: {why}", lambda: f"{s.wsgi}={replicas}")
    run.compose(
        "scale_wsgi",
        "up",
        "-d",
        "--no-deps",
        "--wait",
        "--scale",
        f"{s.wsgi}={replicas}",
        s.wsgi,
    )
    stack.forget_ports()

    def health() -> str:
        wait_until(
            lambda: stack.http_ok(t.paths.health),
            timeout_s=30,
            what=f"{t.paths.health} through nginx to answer 200",
        )
        return f"GET {t.paths.health} → 200"

    run.action("health", f"curl -f {stack.base_url}{t.paths.health}", health)
    logs = run.compose("logs", "logs", "--no-color", "--tail", str(LOG_LINES), s.wsgi)
    errors = [ln for ln in logs.stdout.splitlines() if "Traceback" in ln or " ERROR " in ln]
    stack.journal.event(
        "rollback", "phase2.error_log_lines", count=len(errors), first=errors[:3], of=LOG_LINES
    )


def wsgi_replicas(target: Target, running: int) -> tuple[int, str]:
    """Phase 2's WSGI replica count and why: the target's ``rollback.phase2_wsgi_replicas``
    (default the plan's 4), or the ``running`` ones when more -- the plan's step scales up,
    never down."""
    wanted = target.rollback.phase2_wsgi_replicas
    source = (
        f"the plan's {PLAN_WSGI_REPLICAS}"
        if wanted == PLAN_WSGI_REPLICAS
        else f"target {target.name}'s rollback.phase2_wsgi_replicas {wanted}, not the "
        f"plan's {PLAN_WSGI_REPLICAS}"
    )
    if running > wanted:
        return running, f"{running} running, kept (scale up only; {source})"
    return wanted, f"{source} ({running} running)"


def probe_scale_as_written(run: PhaseRun) -> None:
    """``--dry-run`` the plan's step 3 and see whether it would start the stopped ASGI."""
    s = run.stack.target.services
    dry = run.compose(
        "scale_wsgi_plan_dry_run",
        "--dry-run",
        "up",
        "-d",
        "--scale",
        f"{s.wsgi}={PLAN_WSGI_REPLICAS}",
        check=False,
    )
    starts = [
        ln.strip()
        for ln in (dry.stdout + dry.stderr).splitlines()
        if f"-{s.asgi}-" in ln and ("Starting" in ln or "Started" in ln)
    ]
    if starts:
        run.defect(
            "phase2-up-restarts-asgi",
            f"`up -d --scale {s.wsgi}={PLAN_WSGI_REPLICAS}` names no service, so it would start "
            f"{s.asgi} again right after step 2 stopped it",
            evidence_of(f"$ {dry.describe()}  → exit {dry.returncode}", *starts[-2:]),
        )
