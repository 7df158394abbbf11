"""The previous release, started as ``rollback-drill up`` starts it: the health paths must
answer 200, one request of each category of the traffic profile must answer as the profile
says (WebSocket excepted: the drill keeps it off on the previous release), and the backup
procedure runs for real, after which every file the rollback reads must exist."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from rollback_drill.readiness.findings import Finding, Review, shown
from rollback_drill.readiness.plan import SCRIPTS, script_health_paths
from rollback_drill.readiness.release import Release, in_target


def check_live(rel: Release, review: Review, reads: list[str], target_file: Path | None) -> None:
    """Bring the previous release up as ``rollback-drill up`` does; its health paths, one
    request of each category, and the backup procedure run for real."""
    import httpx

    from rollback_drill.backup import take_backups
    from rollback_drill.deploy import start_release
    from rollback_drill.errors import DrillError
    from rollback_drill.journal import Journal
    from rollback_drill.probe import probe
    from rollback_drill.stack import Stack
    from rollback_drill.traffic import Category

    t, ws = rel.target, rel.ws
    s = t.services
    stack = Stack(t, ws, Journal())
    try:
        try:
            start_release(stack, [s.nginx, s.wsgi, s.postgres, s.redis])
        except DrillError as exc:
            review.add(
                Finding(
                    "error",
                    "stack-up",
                    shown(t.project_dir / t.compose_files[0]),
                    None,
                    f"the previous release does not come up: {exc}",
                    "Phase 3 and Phase 5 (they bring the previous release up)",
                    "rollback-drill up --target ... shows the failing step",
                    (rel.name,),
                )
            )
            return
        paths: dict[str, list[tuple[str, int | None]]] = {
            t.paths.health: [in_target(target_file, t.name, "paths", "health")]
        }
        for script, number, path in script_health_paths():
            paths.setdefault(path, []).append((shown(SCRIPTS / script), number))
        for path, sources in paths.items():
            try:
                status = httpx.get(stack.base_url + path, timeout=10.0).status_code
            except httpx.HTTPError as exc:
                status = 0
                detail = type(exc).__name__
            else:
                detail = f"HTTP {status}"
            review.checked.append(f"{rel.name}: GET {path} -> {detail}")
            if status == 200:
                continue
            for file, line in sources:  # the static warning at this line becomes this error
                review.findings = [
                    f
                    for f in review.findings
                    if (f.check, f.file, f.line) != ("health-path", file, line)
                ]
                review.add(
                    Finding(
                        "error",
                        "health-path",
                        file,
                        line,
                        f"GET {path} on the previous release answers {detail}, not 200",
                        "Phase 2 step 4, Phase 3 step 6 and the scripts' health check",
                        f"serve {path} (200 when the database and Redis answer), or curl the "
                        f"stack's own health path ({t.paths.health}) in the scripts",
                        (rel.name,),
                    )
                )
        wanted = [Category(c) for c in t.traffic.categories.weights()]
        skipped = [c for c in wanted if c is Category.WEBSOCKET]
        result = probe(
            stack.base_url,
            t.traffic,
            ws.user,
            ws.admin,
            categories=[c for c in wanted if c not in skipped],
        )
        failed = result.failed()
        for category, said in failed.items():
            review.add(
                Finding(
                    "error",
                    "traffic-profile",
                    *in_target(
                        target_file, t.name, "traffic", "categories", category.split(":")[0]
                    ),
                    f"category {category} on the previous release: {said}",
                    "the drill's baseline (the load sends this category) and the checklist's "
                    "'API endpoints return expected data'",
                    f"make the traffic profile's {category} request what the app serves",
                    (rel.name,),
                )
            )
        review.checked.append(
            f"{rel.name}: traffic profile: "
            + ", ".join(f"{c} {'failed' if c in failed else 'ok'}" for c in result.results)
            + (
                f"; {', '.join(skipped)} not probed (the drill keeps it off on the previous "
                "release)"
                if skipped
                else ""
            )
        )
        try:
            take_backups(stack)
        except DrillError as exc:
            review.add(
                Finding(
                    "error",
                    "backup-procedure",
                    shown(Path(__file__).parent.parent / "backup.py"),
                    None,
                    f"the backup procedure fails on the previous release: {exc}",
                    "Configuration Backup Procedure (before deployment), then every phase",
                    "see the failing item; rollback-drill up and rollback_drill.backup",
                    (rel.name,),
                )
            )
            return
        missing = [p for p in reads if not _exists(stack, p)]
        review.checked.append(
            f"{rel.name}: backup procedure ran; files the rollback reads: "
            f"{len(reads) - len(missing)} of {len(reads)} present"
            + (f" (missing: {', '.join(m.split(':', 1)[1] for m in missing)})" if missing else "")
        )
        _confirm(review, [m.partition(":")[2].replace("<workspace>/", "") for m in missing])
    finally:
        stack.down()


def _confirm(review: Review, missing: list[str]) -> None:
    """Mark the backup-name findings that the real backup run confirmed."""
    for i, f in enumerate(review.findings):
        if f.check == "backup-name" and any(f.message.startswith(f"reads {m} ") for m in missing):
            message = f"{f.message} -- confirmed: absent after the backup procedure ran"
            review.findings[i] = Finding(**{**asdict(f), "message": message})


def _exists(stack: Any, path: str) -> bool:
    where, _, name = path.partition(":")
    if where == "host":
        return Path(name.replace("<workspace>", str(stack.workspace.root))).exists()
    service = getattr(stack.target.services, where, where)
    return bool(stack.exec(service, "test", "-e", name, check=False).ok)
