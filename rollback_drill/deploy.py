"""Deploying a release onto the running stack — the step the rollback plan guards against.

A deployment is real: the release's commit is checked out in the run's workspace, the app
images are rebuilt, the new containers started and awaited healthy, migrations applied, and
nginx's configuration replaced the way an operator would (copied into the container, checked
with ``nginx -t``, reloaded). A configuration that fails ``nginx -t`` is never loaded: the
running nginx keeps serving the old one.
"""

from __future__ import annotations

from rollback_drill.compose import CommandResult
from rollback_drill.errors import StackError
from rollback_drill.stack import Stack
from rollback_drill.wait import wait_for

CANDIDATE_SUFFIX = ".candidate"


def migrate(stack: Stack) -> CommandResult:
    t = stack.target
    return stack.exec(t.services.wsgi, *t.manage, "migrate", "--noinput", timeout=180)


def ensure_users(stack: Stack) -> CommandResult:
    t = stack.target
    return stack.exec(t.services.wsgi, *t.manage, "ensure_drill_users", timeout=120)


def install_nginx_conf(stack: Stack, source_rel_path: str) -> None:
    """Copy a config from the workspace into nginx, ``nginx -t`` it, then swap and reload."""
    t = stack.target
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


def reload_nginx(stack: Stack, timeout_s: float = 30.0) -> None:
    """``nginx -s reload``, then poll until no old-generation worker is left serving.

    A reload is asynchronous: old workers keep serving their open (keep-alive) connections
    with the old configuration until they finish, so "reloaded" means none is shutting down.
    """
    nginx = stack.target.services.nginx
    stack.exec(nginx, "nginx", "-s", "reload")
    listing = "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done"

    def old_workers() -> int:
        out = stack.exec(nginx, "sh", "-c", listing, check=False).stdout
        return sum("shutting down" in line for line in out.splitlines())

    wait_for(
        old_workers,
        lambda n: n == 0,
        timeout_s=timeout_s,
        what="nginx's old workers to finish after reload",
        interval_s=0.2,
    )


def start_release(stack: Stack, services: list[str], timeout_s: float = 240.0) -> None:
    """First deployment of the checked-out release: stack up, migrations, users."""
    stack.up(services, timeout_s=timeout_s)
    with stack.journal.step("deploy", "migrate", release=current_release(stack)):
        migrate(stack)
    ensure_users(stack)


def current_release(stack: Stack) -> str:
    return (stack.workspace.root / "app" / "RELEASE").read_text().strip()


def deploy_release(stack: Stack, release: str, timeout_s: float = 240.0) -> str:
    """Roll the running stack forward to ``release`` (a workspace tag); returns its commit."""
    t = stack.target
    app_services = [t.services.wsgi, t.services.asgi]
    with stack.journal.step("deploy", release) as step:
        commit = stack.workspace.checkout(release)
        step.data["commit"] = commit
        stack.compose.check("build", *app_services, timeout=timeout_s)
        stack.compose.check("up", "-d", "--no-deps", *app_services, timeout=timeout_s)
        stack.forget_ports()
        stack.wait_healthy(app_services, timeout_s)
        with stack.journal.step("deploy", "migrate", release=release):
            migrate(stack)
        install_nginx_conf(stack, t.paths.nginx_release_conf)
        return commit
