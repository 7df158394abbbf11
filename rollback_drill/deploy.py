"""Deploying a release onto the running stack — the step the rollback plan guards against.

A deployment is real: the release's commit is checked out in the run's workspace, the app
images are rebuilt, migrations applied (by the new image, before its code serves), the new
containers started and awaited healthy, and
nginx's configuration replaced the way an operator would (copied into the container, checked
with ``nginx -t``, reloaded). A configuration that fails ``nginx -t`` is never loaded: the
running nginx keeps serving the old one.

A deployment can be stopped from outside (the plan's Phase 1, "Stop any ongoing deployment";
:mod:`rollback_drill.deployments`): it writes a record of itself (``deployment.json`` in the
stack's state directory: release, pid, host, a token, the app containers it found), every
``docker compose`` it runs carries the token in its environment (``RBD_DEPLOYMENT``) in a
process group of its own, and between its steps -- and while it waits for new containers to
become healthy -- it looks for a stop request naming its token; it then ends with
:class:`DeploymentStopped`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from rollback_drill import nginx_mount
from rollback_drill.backup import verify_backups
from rollback_drill.compose import CommandResult, run_command
from rollback_drill.deployments import (
    TOKEN_ENV,
    DeploymentRecord,
    record_path,
    stop_request,
)
from rollback_drill.errors import BackupError, StackError
from rollback_drill.nginx_control import CANDIDATE_SUFFIX, reload_nginx
from rollback_drill.stack import Stack
from rollback_drill.wait import wait_for

SERVING = "new containers serving"
"""Journal name of the moment a deployment's new app containers are all up (healthy unless
deployed with ``wait=False``) and the old ones gone: a defect in the app is live from then."""


def migrate(stack: Stack, *, new_image: bool = False) -> CommandResult:
    """``manage.py migrate`` in the running WSGI container, or (``new_image``) in a one-off
    container of the freshly built image, before any container of it serves."""
    t = stack.target
    cmd = (*t.manage, "migrate", "--noinput")
    if new_image:
        return stack.compose.check(
            "run", "--rm", "--no-deps", "-T", t.services.wsgi, *cmd, timeout=180
        )
    return stack.exec(t.services.wsgi, *cmd, timeout=180)


def ensure_users(stack: Stack) -> CommandResult | None:
    """Create the target's drill users with its own command (none: they exist already)."""
    create = stack.target.users.create
    if create is None:
        return None
    return stack.exec(stack.target.service(create.service), *create.command, timeout=120)


def install_nginx_conf(stack: Stack, source_rel_path: str) -> None:
    """Copy a config from the workspace into nginx, ``nginx -t`` it, then swap and reload; a
    config bind-mounted from the repository is tested in a throwaway container and installed
    in place (:mod:`rollback_drill.nginx_mount`)."""
    t = stack.target
    mounted = nginx_mount.mount_source(stack)
    if mounted is not None:
        release_file = stack.workspace.root / source_rel_path
        test = nginx_mount.test_config(stack, release_file)
        if not test.ok:
            raise StackError(
                f"nginx -t rejected {source_rel_path}: {test.tail(1)}; old config kept"
            )
        how = nginx_mount.install(stack, mounted, release_file)
        stack.journal.event("deploy", "nginx config", source=source_rel_path, how=how)
        return
    conf = t.paths.nginx_conf
    candidate = conf + CANDIDATE_SUFFIX
    src = stack.workspace.root / source_rel_path
    if not src.is_file():
        raise StackError(f"nginx config {src} not found in the workspace")
    stack.compose.check("cp", str(src), f"{t.services.nginx}:{candidate}")
    test = stack.exec(t.services.nginx, "nginx", "-t", "-q", "-c", candidate, check=False)
    if not test.ok:
        stack.exec(t.services.nginx, "rm", "-f", candidate, check=False)
        raise StackError(f"nginx -t rejected {source_rel_path}: {test.tail(1)}; old config kept")
    stack.exec(t.services.nginx, "mv", candidate, conf)
    reload_nginx(stack)


def start_release(stack: Stack, services: list[str], timeout_s: float = 240.0) -> None:
    """First deployment of the checked-out release: stack up, migrations, users."""
    stack.up(services, timeout_s=timeout_s)
    with stack.journal.step("deploy", "migrate", release=stack.current_release()):
        migrate(stack)
    ensure_users(stack)


class DeploymentStopped(StackError):
    """A deployment ended on a rollback's stop request (the plan's Phase 1)."""


class Deployment:
    """One deployment as it runs: its record, its stop checks, its ``docker compose`` calls."""

    def __init__(self, stack: Stack, release: str, token: str | None = None) -> None:
        self.stack = stack
        self.release = release
        self.token = token or uuid.uuid4().hex
        self.path = record_path(stack.workspace.state_dir)
        t = stack.target
        self.services = [t.services.wsgi, t.services.asgi]
        before = {s: sorted(c.id for c in stack.containers(s)) for s in self.services}
        self.record = DeploymentRecord.of_this_process(self.token, release, stack.project, before)

    def checkpoint(self) -> None:
        """Raise :class:`DeploymentStopped` when a stop of this deployment was requested."""
        by = stop_request(self.stack.workspace.state_dir, self.token)
        if by is not None:
            raise DeploymentStopped(f"deployment of {self.release} stopped by {by}")

    def compose(self, *args: str, timeout: float = 300.0) -> CommandResult:
        """``docker compose`` of the stack, findable (the token) and killable (own group)."""
        res = run_command(
            [*self.stack.compose.base, *args],
            cwd=self.stack.compose.project_dir,
            timeout=timeout,
            env={"DOCKER_BUILDKIT": "0", "COMPOSE_BAKE": "false", TOKEN_ENV: self.token},
            own_session=True,
        )
        self.checkpoint()  # a command killed by the stop ends as a stop, not as a failure
        if not res.ok:
            last = res.tail(1) or f"exit status {res.returncode}"
            raise StackError(f"docker compose {' '.join(args)}: {last}")
        return res

    def wait_healthy(self, service: str, timeout_s: float) -> None:
        """Poll until every container of ``service`` is healthy, or a stop is requested."""
        stack = self.stack

        def look() -> tuple[bool, dict[str, str]]:
            stopping = stop_request(stack.workspace.state_dir, self.token) is not None
            states = {
                str(row.get("Name", "")): row.get("Health") or row.get("State", "?")
                for row in stack.ps()
                if row.get("Service") == service
            }
            return stopping, states

        wait_for(
            look,
            lambda seen: (
                seen[0] or (bool(seen[1]) and all(v == "healthy" for v in seen[1].values()))
            ),
            timeout_s=timeout_s,
            interval_s=0.5,
            what=f"the new {service} containers of {self.release} to be healthy",
            hint=f"see `docker compose logs {service}`",
        )
        self.checkpoint()

    @contextmanager
    def recorded(self) -> Iterator[Deployment]:
        """The record written while the deployment runs, its end status after it."""
        self.record.save(self.path)
        status = "failed"
        try:
            yield self
            status = "finished"
        except DeploymentStopped:
            status = "stopped"
            raise
        finally:
            self.record.finish(self.path, status)


def deploy_release(
    stack: Stack,
    release: str,
    timeout_s: float = 240.0,
    *,
    wait: bool = True,
    token: str | None = None,
) -> str:
    """Roll the running stack forward to ``release`` (a workspace tag); returns its commit.
    ``wait=False`` does not await the new containers' health (a crash-looping faulty release).
    :class:`DeploymentStopped` when a rollback stopped it (see the module docstring)."""
    dep = Deployment(stack, release, token)
    with dep.recorded():
        return _deploy(dep, timeout_s, wait=wait)


def _deploy(dep: Deployment, timeout_s: float, *, wait: bool) -> str:
    stack, release = dep.stack, dep.release
    t = stack.target
    with stack.journal.step("deploy", release, token=dep.token) as step:
        commit = stack.workspace.checkout(release)
        step.data["commit"] = commit
        dep.checkpoint()
        dep.compose("build", *dep.services, timeout=timeout_s)
        # Schema before code: a release's migrations only add (columns with a database default,
        # indexes), so the running code keeps working on the new schema, and the new code never
        # meets the old one -- migrated after the rolling update, the new containers answered
        # 500 ("column ... does not exist") for the ~6 s until the migration had run.
        with stack.journal.step("deploy", "migrate", release=release):
            cmd = (*t.manage, "migrate", "--noinput")
            dep.compose("run", "--rm", "--no-deps", "-T", t.services.wsgi, *cmd, timeout=180)
        for service in dep.services:
            rolling_update(stack, service, timeout_s=timeout_s, wait=wait, deployment=dep)
        stack.journal.event("deploy", SERVING, release=release)
        dep.checkpoint()
        install_nginx_conf(stack, t.paths.nginx_release_conf)
        return commit


def rolling_update(
    stack: Stack,
    service: str,
    *,
    timeout_s: float = 240.0,
    wait: bool = True,
    deployment: Deployment | None = None,
) -> None:
    """Replace ``service``'s running containers by new ones of the freshly built image with no
    outage: start as many new containers beside the old (``--scale 2n --no-recreate``), await
    them healthy, then stop the old ones gracefully and reload nginx, whose resolver then only
    knows the new addresses. A service with no running container is simply started."""
    dep = deployment or Deployment(stack, f"{service} rolling update")
    old = [c for c in stack.containers(service) if c.status == "running"]
    replicas = max(1, len(old))
    dep.compose(
        "up",
        "-d",
        "--no-deps",
        "--no-recreate",
        "--scale",
        f"{service}={len(old) + replicas}",
        service,
        timeout=timeout_s,
    )
    stack.forget_ports()
    if wait:
        dep.wait_healthy(service, timeout_s)
    for container in old:
        dep.checkpoint()
        container.stop(timeout=10)
        container.remove(v=True)
    if old:
        reload_nginx(stack, drain=False)
    stack.forget_ports()


def guarded_deploy(
    stack: Stack, release: str, timeout_s: float = 240.0, *, wait: bool = True
) -> str:
    """:func:`deploy_release`, but only with a complete, verified backup set and the deployment
    lock: raises :class:`~rollback_drill.errors.BackupError` or
    :class:`~rollback_drill.errors.LockHeld` (one line) before anything is changed. The lock
    names the deployment's token, so that a rollback's Phase 1 can find and stop it."""
    from rollback_drill.lock import DeploymentLock

    token = uuid.uuid4().hex
    lock = DeploymentLock.for_stack(stack)
    with lock.held(f"deployment of {release}", token=token, release=release):
        dep = Deployment(stack, release, token)
        with dep.recorded():
            with stack.journal.step("deploy", "backup gate", release=release) as step:
                backups = verify_backups(stack)
                step.data.update(commit=backups.commit, dump=backups.dump)
                head = stack.workspace.head()
                if backups.commit != head:
                    raise BackupError(
                        f"the backup set is of commit {backups.commit[:12]} but {head[:12]} "
                        "is deployed: run the backup procedure again"
                    )
            return _deploy(dep, timeout_s, wait=wait)
