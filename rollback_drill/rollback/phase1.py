"""Phase 1, Stop Deployment (30 s): stop any ongoing deployment, the deployment lock, stop
``backend-asgi``, announce.

The plan stops ASGI, then touches ``/tmp/deployment.lock``, then notifies; its step 1 says
"Stop any ongoing deployment". The executor takes the (per-stack, atomic) lock *first*, so that
a second rollback or a deployment racing this one is refused before it changes anything:

- a deployment of this suite holding it (or rolling without it) on this host is stopped -- its
  ``docker compose`` processes and the containers it created (:mod:`rollback_drill.deployments`)
  -- and the lock taken over from it; what was stopped is a step of the phase, in the journal;
- a holder whose process is gone (a crashed deployment, a finished drill's rollback) is
  replaced, with a note in the journal;
- a live holder that is not a deployment (another rollback), or one on another host, refuses
  this rollback with ``LockHeld``: nothing is changed.

Then it stops ASGI as written, and sends the plan's announcement template, filled, to the
configured sink -- ``slack-notify`` does not exist (plan defect ``slack-notify-missing``,
checked with ``command -v``, never run).
"""

from __future__ import annotations

from rollback_drill.announce import Announcement
from rollback_drill.deployments import DeploymentRecord, running_deployment
from rollback_drill.deployments import stop_deployment as stop_rolling
from rollback_drill.errors import LockHeld
from rollback_drill.lock import LockInfo
from rollback_drill.rollback.budgets import spec
from rollback_drill.rollback.steps import PhaseRun

__all__ = ["announce", "stop_deployment", "take_lock"]

STOP_TIMEOUT_S = 20.0  # of Phase 1's 30 s


def stop_deployment(run: PhaseRun) -> None:
    take_lock(run)
    t = run.stack.target
    run.compose("stop_asgi", "stop", t.services.asgi)
    announce(run)


def take_lock(run: PhaseRun) -> None:
    """Take the stack's deployment lock for this rollback, stopping a deployment that holds
    it or replacing a holder that is gone (module docstring); LockHeld when another has it."""
    ctx = run.ctx
    if ctx.lock_info is not None:
        return
    lock = ctx.lock
    other = lock.holder()
    rolling = running_deployment(run.stack)
    if rolling is not None and (other is None or other.token != rolling.token):
        _stop(run, rolling)  # a deployment rolling without the lock (``deploy_release``)
    if other is None:

        def acquire() -> str:
            ctx.lock_info = lock.acquire(ctx.holder)
            return f"{lock.path} held by {ctx.lock_info.describe()}"

        run.action("lock", f"create {lock.path} atomically (touch /tmp/deployment.lock)", acquire)
        return
    alive = other.alive()
    if alive and other.is_deployment and rolling is not None and rolling.token == other.token:
        _stop(run, rolling)
        why = f"from {other.describe()}, stopped"
    elif alive is False:
        why = f"from {other.describe()}, whose process is gone"
    else:

        def refuse() -> str:
            raise LockHeld(f"deployment lock {lock.path} is held by {other.describe()}")

        run.action("lock", f"create {lock.path} atomically (touch /tmp/deployment.lock)", refuse)
    _take_over(run, other, why)


def _stop(run: PhaseRun, record: DeploymentRecord) -> None:
    ctx = run.ctx

    def stop() -> str:
        try:
            report = stop_rolling(run.stack, record, ctx.holder, timeout_s=STOP_TIMEOUT_S)
        except TimeoutError as exc:  # still changing the stack: touch nothing
            raise LockHeld(str(exc)) from None
        ctx.stopped.append(report.describe())
        return report.describe()

    run.action(
        "stop_deployment",
        f"stop the ongoing {record.describe()}: its docker compose processes and new containers",
        stop,
    )


def _take_over(run: PhaseRun, other: LockInfo, why: str) -> None:
    ctx = run.ctx
    lock = ctx.lock

    def take() -> str:
        ctx.lock_info = lock.take_over(ctx.holder, other)
        note = f"lock taken over {why}"
        run.stack.journal.event("rollback", "lock taken over", previous=other.describe(), why=why)
        ctx.stopped.append(note)
        return f"{lock.path} held by {ctx.lock_info.describe()} ({note})"

    run.action("lock", f"take over {lock.path} (touch /tmp/deployment.lock)", take)


def announce(run: PhaseRun) -> None:
    """Send the plan's Rollback Announcement Template, filled, once per rollback."""
    ctx = run.ctx
    if ctx.announcement is not None:
        return
    if ctx.probe_plan:
        probe = run.host(
            "notify_plan", ["bash", "-c", "command -v slack-notify"], check=False, timeout=10
        )
        if not probe.ok:
            run.defect(
                "slack-notify-missing",
                "slack-notify is not a command on this machine: the plan's notification "
                "would fail and nobody would be told",
                f"$ {probe.describe()}  → exit {probe.returncode} (not found)",
            )
    seq = ctx.sequence or (run.phase,)
    announcement = Announcement(
        reason=ctx.reason,
        started=run.result.started,
        expected_duration_s=ctx.policy.rollback.success_criterion_s,  # "[TIME + 5 minutes]"
        impact="; ".join(dict.fromkeys(spec(p, ctx.policy).impact for p in seq)),
        status_interval_s=ctx.policy.status_update_interval_s(),
        time_scale=ctx.policy.time_scale,
    )
    ctx.announcement = announcement
    text = announcement.render()
    run.action(
        "announce",
        "send the Rollback Announcement Template, filled",
        lambda: ctx.sink.send(announcement.subject, text),
    )
