"""Bad input: what must stop a deployment or a rollback, and leave the stack as it was.

- no backup set, or a dump ``pg_restore`` cannot read: the deployment refuses in one line and
  changes nothing (the release still answers);
- a restored nginx config that fails ``nginx -t``: never loaded -- the running nginx keeps
  serving its config (proved with a request) and its ``nginx.conf`` is untouched;
- a rollback (or a deployment) while another holds the deployment lock: refused, nothing
  stopped.
"""

from __future__ import annotations

import pytest

from rollback_drill.backup import take_backups
from rollback_drill.client import AppClient
from rollback_drill.deploy import guarded_deploy
from rollback_drill.errors import BackupError, LockHeld, RollbackError
from rollback_drill.fixtures.rollback import RollbackDrill, assert_served
from rollback_drill.lock import DeploymentLock
from rollback_drill.stack import Stack

pytestmark = [pytest.mark.full, pytest.mark.nightly, pytest.mark.docker]


def release_answering(stack: Stack) -> str:
    with AppClient(stack.base_url) as client:
        return client.get(stack.target.paths.health).release


def nginx_conf_sha(stack: Stack) -> str:
    t = stack.target
    return stack.exec(t.services.nginx, "sha256sum", t.paths.nginx_conf).stdout.split()[0]


def test_deployment_without_backup_refuses(fresh_stack: Stack) -> None:
    stack = fresh_stack
    head = stack.workspace.head()
    with pytest.raises(BackupError) as err:
        guarded_deploy(stack, stack.target.releases.next)
    message = str(err.value)
    assert "no backup set" in message and "\n" not in message
    assert stack.workspace.head() == head
    assert release_answering(stack) == stack.target.releases.previous
    assert not DeploymentLock.for_stack(stack).is_held


def test_deployment_with_corrupt_dump_refuses(fresh_stack: Stack) -> None:
    stack = fresh_stack
    t = stack.target
    backups = take_backups(stack)
    # the dump is damaged after it was taken: half of it is gone
    stack.exec(
        t.services.postgres,
        "sh",
        "-c",
        f"head -c 2048 {backups.dump} > {backups.dump}.cut && mv {backups.dump}.cut {backups.dump}",
    )
    with pytest.raises(BackupError) as err:
        guarded_deploy(stack, t.releases.next)
    message = str(err.value)
    assert f"backup dump {backups.dump} cannot be restored: pg_restore: error:" in message
    assert "\n" not in message
    assert stack.workspace.head() == backups.commit
    assert release_answering(stack) == t.releases.previous


def test_nginx_config_failing_test_is_never_loaded(phase_drill: RollbackDrill) -> None:
    d, stack = phase_drill, phase_drill.stack
    t = stack.target
    d.backup()
    d.deploy_hybrid()
    # the pre-hybrid backup is damaged after the deployment
    damage = f"echo 'this is not nginx' >> {t.paths.nginx_conf_backup}"
    stack.exec(t.services.nginx, "sh", "-c", damage)
    before = nginx_conf_sha(stack)
    # the guard itself, not the executor's fallback to Phase 5 (test_rollback_abort.py)
    with pytest.raises(RollbackError, match="nginx -t rejected the restored config"):
        d.rollback((1, 2), "drill: broken nginx backup", fallback=False)
    assert nginx_conf_sha(stack) == before  # nginx.conf is still the hybrid one
    # the running nginx still serves the hybrid config: its health location says so, and it
    # still routes streaming to the (stopped) ASGI backend, not to WSGI
    with AppClient(stack.base_url) as client:
        nginx_health = client.get("/nginx-health")
        assert nginx_health.headers.get("x-nginx-release") == t.releases.next
        assert client.get(t.paths.health).status == 200
    DeploymentLock.for_stack(stack).force_release()


def test_rollback_refuses_while_another_holds_the_lock(phase_drill: RollbackDrill) -> None:
    d, stack = phase_drill, phase_drill.stack
    t = stack.target
    d.backup()
    d.deploy_hybrid()
    lock = DeploymentLock.for_stack(stack)
    other = lock.acquire("another rollback drill")
    with pytest.raises(LockHeld, match="held by another rollback drill"):
        d.rollback((1, 2), "drill: concurrent rollback")
    with pytest.raises(LockHeld, match="held by another rollback drill"):
        guarded_deploy(stack, t.releases.next)
    # nothing was touched: ASGI still serves streaming, the other holder keeps the lock
    assert_served(stack, "/api/stream/", "asgi", t.releases.next)
    assert lock.holder() is not None and lock.holder().holder == "another rollback drill"  # type: ignore[union-attr]
    lock.release(other)
