"""The executor's own checks after a phase: the plan's smoke test and full health check, and
the one rule for "All containers are healthy".

The plan calls ``./scripts/smoke-test.sh`` and ``./scripts/full-health-check.sh`` without
defining them; these are the executor's versions, built from the plan's Rollback Validation
Checklist (the shell versions in ``scripts/`` check the same things with curl).

"All containers are healthy (docker-compose ps)" has one rule, :func:`judge_containers`, for
the executor, the checklist, the plan-scripts drill and the shell checks alike: every container
of the project (``ps -a``: stopped ones included) is running, and healthy where it has a health
check -- except the services the executed rollback phases stopped on purpose
(:func:`stopped_on_purpose`: read from the commands the phases ran, e.g. Phase 1's ``stop
backend-asgi``), which may be stopped and are named. The shell checks call it as::

    python -m rollback_drill.rollback.health containers --compose "$DOCKER_COMPOSE" \
        --stopped "backend-asgi"
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from rollback_drill.errors import RollbackError
from rollback_drill.probe import probe
from rollback_drill.stack import Stack
from rollback_drill.traffic import Category
from rollback_drill.wait import wait_for

if TYPE_CHECKING:
    from rollback_drill.rollback.result import RollbackResult

__all__ = [
    "ContainerHealth",
    "containers_healthy",
    "full_health_check",
    "judge_containers",
    "smoke_test",
    "stopped_on_purpose",
]

HEALTH_TIMEOUT_S = 60.0


def _health(stack: Stack) -> tuple[int, dict[str, str]]:
    try:
        answer = httpx.get(stack.base_url + stack.target.paths.health, timeout=5)
    except httpx.HTTPError:
        return 0, {}
    return answer.status_code, {k.lower(): v for k, v in answer.headers.items()}


def smoke_test(stack: Stack, release: str, timeout_s: float = HEALTH_TIMEOUT_S) -> str:
    """Health 200, the login and every CRUD request of the target's profile as expected; where
    the app names its release and server in headers (the profile's ``headers``): ``release``
    answering, from the WSGI server."""
    t = stack.target
    status, headers = wait_for(
        lambda: _health(stack),
        lambda h: h[0] == 200,
        timeout_s=timeout_s,
        what=f"{t.paths.health} to answer 200",
        interval_s=0.5,
    )
    problems = []
    names = t.traffic.headers
    if names.release and headers.get(names.release.lower()) != release:
        problems.append(f"release {headers.get(names.release.lower())!r} answers, not {release!r}")
    if names.served_by and headers.get(names.served_by.lower()) != "wsgi":
        problems.append(f"health served by {headers.get(names.served_by.lower())!r}, not wsgi")
    ws = stack.workspace
    auth = [Category.AUTH] if t.traffic.categories.auth is not None else []
    probed = probe(
        stack.base_url, t.traffic, ws.user, ws.admin, categories=auth, crud_requests=True
    )
    problems += [f"{key}: {why}" for key, why in probed.failed().items()]
    if problems:
        raise RollbackError("smoke test failed: " + "; ".join(problems))
    return f"health {status}; " + ", ".join(f"{k} ok" for k in probed.results)


@dataclass(frozen=True)
class ContainerHealth:
    """The verdict on a project's containers: ``bad`` (name -> state) fails it; ``excused``
    are stopped containers of services stopped on purpose."""

    states: dict[str, str]  # container name -> health or state
    bad: dict[str, str]
    excused: dict[str, str]
    stopped_on_purpose: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        running = len(self.states) - len(self.excused)
        return not self.bad and running > 0

    def describe(self) -> str:
        if not self.states:
            return "no container in the project"
        if self.bad:
            shown = ", ".join(f"{n}={s}" for n, s in sorted(self.bad.items()))
        else:
            shown = ", ".join(f"{n}={s}" for n, s in sorted(self.states.items()))
        if self.excused:
            why = ", ".join(sorted(self.excused))
            shown += f"; stopped on purpose by the rollback: {why}"
        return shown


def judge_containers(
    rows: Sequence[dict[str, Any]], stopped: Collection[str] = ()
) -> ContainerHealth:
    """The one rule: every container running, and healthy where it has a health check; a
    container of a service in ``stopped`` (stopped on purpose) may be stopped instead."""
    states: dict[str, str] = {}
    bad: dict[str, str] = {}
    excused: dict[str, str] = {}
    for row in rows:
        name = str(row.get("Name") or row.get("Service") or "?")
        state = str(row.get("State") or "?")
        health = str(row.get("Health") or "")
        shown = health or state
        states[name] = shown
        if state == "running" and health in ("", "healthy"):
            continue
        if state in ("exited", "created") and row.get("Service") in stopped:
            excused[name] = shown
            continue
        bad[name] = shown
    return ContainerHealth(states, bad, excused, tuple(sorted(stopped)))


_STOPS = {"stop", "kill", "down", "pause"}
_STARTS = {"up", "start", "restart", "unpause"}
_VALUED = {"-t", "--timeout", "--scale", "--wait-timeout", "-s", "--signal", "--pull"}
_VALUED |= {"--exit-code-from", "--attach", "--no-attach", "--rmi"}
ALL = "*"


def stopped_on_purpose(result: RollbackResult, base: Sequence[str]) -> tuple[str, ...]:
    """The services ``result``'s phases left stopped, from the commands their steps ran:
    ``stop``/``kill``/``down`` of the project (``base`` is its ``docker compose ...``) stop
    the services they name (all without names), a later ``up``/``start``/``restart`` starts
    them again. ``*`` stands for every service."""
    stopped: list[str] = []
    n = len(base)
    for phase in result.phases:
        for step in phase.steps:
            try:
                tokens = shlex.split(step.cmd)
            except ValueError:
                continue
            if list(tokens[:n]) != list(base) or len(tokens) <= n:
                continue
            sub, args = tokens[n], tokens[n + 1 :]
            if sub not in _STOPS | _STARTS or step.returncode != 0:
                continue
            names, skip = [], False
            for arg in args:
                if skip:
                    skip = False
                elif arg.startswith("-"):
                    skip = arg in _VALUED
                else:
                    names.append(arg.split("=")[0])
            if sub in _STOPS:
                stopped = [ALL] if not names or sub == "down" else [*stopped, *names]
            elif not names:
                stopped = []
            else:
                stopped = [s for s in stopped if s not in names]
    return tuple(dict.fromkeys(stopped))


def _expand(stopped: Collection[str], rows: Sequence[dict[str, Any]]) -> set[str]:
    if ALL in stopped:
        return {str(r.get("Service")) for r in rows}
    return set(stopped)


def container_health(stack: Stack, stopped: Collection[str] = ()) -> ContainerHealth:
    """The rule applied to ``stack``'s containers (``docker compose ps -a``)."""
    rows = stack.ps()
    return judge_containers(rows, _expand(stopped, rows))


def containers_healthy(stack: Stack, stopped: Collection[str] = ()) -> str:
    """Every container of the project running, and healthy where it has a health check (but
    the services in ``stopped``, stopped on purpose); :class:`RollbackError` otherwise."""
    verdict = container_health(stack, stopped)
    if not verdict.ok:
        raise RollbackError(f"containers not healthy: {verdict.describe()}")
    return verdict.describe()


def full_health_check(stack: Stack, release: str) -> str:
    """The Rollback Validation Checklist's checks that need no metrics: containers healthy,
    health 200, user login and API data (the smoke test), the admin panel with the staff user."""
    out = [containers_healthy(stack), smoke_test(stack, release)]
    t, ws = stack.target, stack.workspace
    if t.traffic.categories.admin is not None:
        admin = probe(stack.base_url, t.traffic, ws.user, ws.admin, categories=[Category.ADMIN])
        failed = admin.failed()
        if failed:
            raise RollbackError(f"admin panel {t.paths.admin}: {failed['admin']}")
        out.append(f"admin panel {t.paths.admin} ok with the staff user")
    return "; ".join(out)


def _compose_rows(compose: str) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [*shlex.split(compose), "ps", "-a", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise RollbackError(f"{compose} ps -a: exit {proc.returncode}: {proc.stderr.strip()}")
    rows: list[dict[str, Any]] = []
    for line in proc.stdout.splitlines():
        if line.strip():
            data = json.loads(line)
            rows.extend(data if isinstance(data, list) else [data])
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """``containers --compose CMD [--stopped "svc ..."]``: the rule, for the shell checks
    (``scripts/lib/checks.sh``); prints ``PASS``/``FAIL all containers are healthy: ...``."""
    parser = argparse.ArgumentParser(prog="python -m rollback_drill.rollback.health")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("containers", help="every container running and healthy")
    cmd.add_argument("--compose", default="docker compose", help="the project's compose command")
    cmd.add_argument("--stopped", default="", help="services stopped on purpose (spaces)")
    args = parser.parse_args(argv)
    name = "all containers are healthy"
    try:
        rows = _compose_rows(args.compose)
    except (RollbackError, OSError, subprocess.SubprocessError, ValueError) as exc:
        print(f"FAIL {name}: {exc}")
        return 1
    verdict = judge_containers(rows, _expand(args.stopped.split(), rows))
    print(f"{'PASS' if verdict.ok else 'FAIL'} {name}: {verdict.describe()}")
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
