"""The review's entry points: :func:`review` (a workspace with the releases as commits, each
check of this package over each release, then the plan's; everything it made removed) and
:func:`check_deep` (``rollback-drill check-target --deep``: printed, JSON, the exit status)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rollback_drill.errors import StackError
from rollback_drill.readiness.compose_config import check_compose_config, check_files_and_images
from rollback_drill.readiness.findings import Finding, Review, shown
from rollback_drill.readiness.live import check_live
from rollback_drill.readiness.nginx import (
    check_nginx_limits,
    conf_files,
    nginx_mounted,
    nginx_mounts,
    nginx_test_run,
)
from rollback_drill.readiness.plan import (
    check_backups,
    check_health_paths,
    check_script_services,
    suite_writes,
)
from rollback_drill.readiness.release import Release, services_of
from rollback_drill.readiness.settings import check_settings
from rollback_drill.target import Target
from rollback_drill.workspace import RUN_LABEL, Workspace, create_workspace

DEFAULT_LOAD_RATE = 40.0  # requests/s: the drills' default (--drill-load-rate, RBD_LOAD_RATE)
DEFAULT_CONCURRENCY = 64  # the load's bound on requests in flight (LoadConfig.max_concurrency)


def _checkout(ws: Workspace, release: str) -> None:
    """Check a release out without the workspace's hook (the run's override: the review reads
    the team's own files, and a release whose compose config fails is a finding, not a crash)."""
    ws.git("-c", "core.hooksPath=/dev/null", "checkout", "-q", "--detach", release)


def _docker() -> Any:
    from rollback_drill.errors import EnvironmentProblem
    from rollback_drill.stack import docker_client

    try:
        return docker_client()
    except EnvironmentProblem:
        return None


def review(
    target: Target,
    *,
    nginx_test: bool = True,
    start: bool = False,
    load_rate: float = DEFAULT_LOAD_RATE,
    concurrency: int = DEFAULT_CONCURRENCY,
    releases: Iterable[str] | None = None,
    target_file: Path | None = None,
) -> Review:
    """Review ``target`` for what will break a rollback; changes nothing of the target's, and
    removes every container it made (they carry the run's labels). The review comes back
    scrubbed of the run's secrets (:meth:`Review.scrub`): the one way its text leaves."""
    started = time.monotonic()
    out = Review(target.name, tuple(releases or (target.releases.previous, target.releases.next)))
    # the environment's secrets, known before the workspace (the run's own come with it)
    out.redact(*(os.environ.get(name, "") for name in target.env.from_environment))
    _review(target, out, nginx_test, start, load_rate, concurrency, target_file)
    out.duration_s = time.monotonic() - started
    out.scrub()
    return out


def _review(
    target: Target,
    out: Review,
    nginx_test: bool,
    start: bool,
    load_rate: float,
    concurrency: int,
    target_file: Path | None,
) -> None:
    """:func:`review`'s checks, their findings added to ``out``."""
    rel_names = out.releases
    client = _docker()
    try:
        ws = create_workspace(target)
    except StackError as exc:  # its checkout's hook writes the override: compose config failed
        out.add(
            Finding(
                "error",
                "compose-config",
                shown(target.project_dir / target.compose_files[0]),
                None,
                str(exc),
                "every phase (each runs docker-compose on these files)",
                "make `docker compose config` pass with the target's env file",
                (target.releases.previous,),
            )
        )
        if client is not None:
            client.close()
        return
    out.run_id = ws.run_id
    out.redact(*ws.secrets.all())  # generated for this run, and the passwords
    try:
        checked: dict[str, Release] = {}
        for name in rel_names:
            _checkout(ws, name)
            rel = checked[name] = Release(name, target, ws)
            check_compose_config(rel, out)
            if not rel.config:
                continue
            check_files_and_images(rel, out, client)
            check_settings(rel, out, client)
            check_nginx_limits(rel, conf_files(nginx_mounts(rel)), out, load_rate, concurrency)
            if nginx_test and client is not None:
                out.checked.append(nginx_test_run(rel, out, client))
            elif nginx_test:
                out.checked.append(f"{name}: nginx -t not run (Docker does not answer)")
            if client is None:
                out.checked.append(f"{name}: images and image health checks not checked (Docker)")
        out.checked.append(
            f"compose config, files, ports, names, restart policies, health checks and nginx "
            f"limits (load {load_rate:g} r/s from one address) of {', '.join(rel_names)}"
        )
        previous = checked.get(target.releases.previous) or next(iter(checked.values()), None)
        reads: list[str] = []
        if previous is not None:
            reads = check_backups(previous, out)
            check_health_paths(target, out)
            services = {n for r in checked.values() for n in services_of(r)}
            if services:  # else no compose config resolved: that is the finding
                check_script_services(services, out)
            out.checked.append("files the rollback scripts and phases read vs the backup's")
        if start and previous is not None and previous.config:
            _checkout(ws, previous.name)
            mounted = nginx_mounted(previous)
            suite = suite_writes(target, mounted)
            # the suite's own phases read its nginx backup and commit file; the plan's, theirs
            check_live(
                previous,
                out,
                sorted({suite[0], *(r for r in suite if "pre-migration-commit" in r), *reads}),
                target_file,
            )
        else:
            why = "--no-start" if not start else "its compose config does not resolve"
            out.checked.append(
                f"{target.releases.previous} started (health paths, traffic profile, backup "
                f"procedure run): not checked ({why})"
            )
    finally:
        ws.remove()
        if client is not None:
            from rollback_drill.stack import sweep

            sweep(client, f"{RUN_LABEL}={ws.run_id}")
            client.close()


def check_deep(
    path: Path,
    *,
    start: bool = True,
    json_path: Path | None = None,
    load_rate: float | None = None,
    emit: Any = print,
) -> Review:
    """``check-target --deep``: review, print (``emit``), write ``json_path``; raises
    :class:`~rollback_drill.errors.NotReady` (one line) when any finding is an error."""
    from rollback_drill.errors import DrillError, NotReady
    from rollback_drill.target import load_target

    source = "--load-rate" if load_rate is not None else "RBD_LOAD_RATE"
    raw = str(load_rate) if load_rate is not None else os.environ.get("RBD_LOAD_RATE", "")
    try:
        load_rate = float(raw) if raw else DEFAULT_LOAD_RATE
    except ValueError:
        load_rate = 0.0
    if not 0 < load_rate < float("inf"):
        raise DrillError(f"{source} {raw!r}: the drill's load rate is a number of requests/s > 0")
    result = review(load_target(path), start=start, load_rate=load_rate, target_file=path)
    for line in result.lines():
        emit(line)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(result.to_json())
    if result.errors:
        raise NotReady(
            f"{path}: not ready for a rollback drill: {len(result.errors)} error(s) "
            f"(first: {result.sorted()[0].where}: {result.sorted()[0].message})"
        )
    return result
