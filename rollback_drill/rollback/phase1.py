"""Phase 1, Stop Deployment (30 s): the deployment lock, stop ``backend-asgi``, announce.

The plan stops ASGI, then touches ``/tmp/deployment.lock``, then notifies. The executor takes
the (per-stack, atomic) lock *first*, so that a second rollback or a deployment racing this one
is refused before it changes anything; then stops ASGI as written; then sends the plan's
announcement template, filled, to the configured sink -- ``slack-notify`` does not exist (plan
defect ``slack-notify-missing``, checked with ``command -v``, never run).
"""

from __future__ import annotations

from rollback_drill.announce import Announcement
from rollback_drill.rollback.budgets import sequence_budget_s, spec
from rollback_drill.rollback.steps import PhaseRun

__all__ = ["announce", "stop_deployment", "take_lock"]


def stop_deployment(run: PhaseRun) -> None:
    take_lock(run)
    t = run.stack.target
    run.compose("stop_asgi", "stop", t.services.asgi)
    announce(run)


def take_lock(run: PhaseRun) -> None:
    """Take the stack's deployment lock for this rollback (LockHeld when another has it)."""
    ctx = run.ctx
    if ctx.lock_info is not None:
        return

    def acquire() -> str:
        ctx.lock_info = ctx.lock.acquire(ctx.holder)
        return f"{ctx.lock.path} held by {ctx.lock_info.describe()}"

    run.action("lock", f"create {ctx.lock.path} atomically (touch /tmp/deployment.lock)", acquire)


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
        expected_duration_s=sequence_budget_s(seq),
        impact="; ".join(dict.fromkeys(spec(p).impact for p in seq)),
    )
    ctx.announcement = announcement
    text = announcement.render()
    run.action(
        "announce",
        "send the Rollback Announcement Template, filled",
        lambda: ctx.sink.send(announcement.subject, text),
    )
