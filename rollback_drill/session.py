"""A stack to try by hand: ``rollback-drill up`` leaves one running, ``rollback-drill down``
removes it.

``up`` does what a drill's set-up does -- a private workspace, the run's override, the
previous release up and healthy, migrated, its users created; with ``--release next`` the next
release deployed on top, as a drill deploys it -- and then returns, leaving the stack running.
Such a stack is *kept*: its objects carry the label ``io.rollback-drill.kept=1`` and its
workspace the state file ``.rollback/kept.json``, so ``cleanup`` (which removes the runs whose
process is gone, and ``up``'s process is gone at once) leaves it alone unless ``--all`` is
given; ``down`` removes it like ``cleanup`` does (by its run label only) and its workspace.

The users' and the database's credentials go to ``.rollback/credentials`` in the workspace
(mode 0600, in the variable names ``watch`` reads), never to the terminal unless asked.
The journal of the ``up`` is written to ``reports/up/<run>/journal.jsonl``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from rollback_drill.cleanup import cleanup, run_workspaces
from rollback_drill.deploy import deploy_release, start_release
from rollback_drill.errors import StackError, TargetError
from rollback_drill.journal import Journal
from rollback_drill.override import OverrideParams
from rollback_drill.signals._docker import list_containers
from rollback_drill.stack import Stack, built_image_parents, docker_client, prune_untagged
from rollback_drill.target import Target, load_target
from rollback_drill.workspace import KEPT_FILE, KEPT_LABEL, RUN_LABEL, STATE_DIR, create_workspace

__all__ = [
    "CREDENTIALS_FILE",
    "KEPT_FILE",
    "KEPT_LABEL",
    "KeptStack",
    "bring_up",
    "describe",
    "kept_runs",
    "resolve_target",
    "take_down",
]

CREDENTIALS_FILE = f"{STATE_DIR}/credentials"


class NoTarget(TargetError):
    """No ``--target`` and no ``RBD_TARGET``: an installed suite has no default target."""


@dataclass(frozen=True)
class KeptStack:
    """What ``up`` left running, as recorded in the workspace's ``kept.json``."""

    run_id: str
    project: str
    target: str
    release: str
    url: str
    health: str  # the target's health path
    workspace: str
    credentials: str
    journal: str
    compose: list[str]  # the ``docker compose`` command line that reaches the stack
    redis_port: int
    started: str
    up_s: float

    @property
    def compose_command(self) -> str:
        return shlex.join(self.compose)

    def save(self) -> None:
        (Path(self.workspace) / KEPT_FILE).write_text(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def load(cls, workspace: Path) -> KeptStack:
        return cls(**json.loads((workspace / KEPT_FILE).read_text()))


def resolve_target(path: Path | None) -> Path:
    """``--target``, else ``RBD_TARGET``; neither: one line asking for ``--target``."""
    if path is not None:
        return path
    env = os.environ.get("RBD_TARGET", "")
    if env:
        return Path(env)
    raise NoTarget("no target: pass --target PATH (a target file, e.g. targets/reference.yaml)")


def resolve_release(target: Target, release: str | None) -> str:
    """``previous``/``next`` or a release's own name -> the release's name."""
    rel = target.releases
    names = {"previous": rel.previous, "next": rel.next, rel.previous: rel.previous}
    names[rel.next] = rel.next
    if release is None:
        return rel.previous
    if release not in names:
        raise TargetError(
            f"target {target.name}: no release '{release}' to bring up "
            f"(previous = {rel.previous}, next = {rel.next})"
        )
    return names[release]


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    path.chmod(0o600)


def credentials_text(stack: Stack) -> str:
    """The stack's credentials as a shell-sourceable env file: the run's values of the
    variables the target's users name (``${DRILL_PASSWORD}``...: what ``watch`` reads from its
    environment), and where the stack answers."""
    import re

    ws, users = stack.workspace, stack.target.users
    env = dict(line.split("=", 1) for line in ws.env_file.read_text().splitlines() if "=" in line)
    texts = (users.user.username, users.user.password, users.admin.username, users.admin.password)
    names = sorted({n for t in texts for n in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", t)})
    lines = {name: env[name] for name in names if name in env}
    lines |= {
        "RBD_BASE_URL": stack.base_url,
        "RBD_DATABASE_URL": stack.postgres_dsn(),
        "RBD_REDIS_URL": stack.redis_url(),
    }
    head = f"# rollback-drill up, run {ws.run_id}: the stack's logins (keep private)\n"
    return head + "".join(f"{k}={shlex.quote(v)}\n" for k, v in lines.items())


def bring_up(
    target_path: Path, release: str | None = None, *, report_root: Path = Path("reports")
) -> KeptStack:
    """Bring the target's stack up ready to use and leave it running; on any failure (also
    Ctrl-C) everything of it is removed before the error propagates."""
    started = time.monotonic()
    target = load_target(target_path)
    name = resolve_release(target, release)
    run_id = uuid.uuid4().hex[:10]
    journal = Journal(report_root / "up" / run_id / "journal.jsonl")
    workspace = create_workspace(target, run_id=run_id)
    stack: Stack | None = None
    try:
        params = OverrideParams.load(workspace.root)
        labels = {**params.labels, KEPT_LABEL: "1"}
        dataclasses.replace(params, labels=labels).save(workspace.root)
        stack = Stack(target, workspace, journal)
        s = target.services
        start_release(stack, [s.nginx, s.wsgi, s.postgres, s.redis])
        if name != target.releases.previous:
            deploy_release(stack, name)
        credentials = workspace.root / CREDENTIALS_FILE
        _write_private(credentials, credentials_text(stack))
        kept = KeptStack(
            run_id=run_id,
            project=workspace.project,
            target=str(target_path.resolve()),
            release=name,
            url=stack.base_url,
            health=target.paths.health,
            workspace=str(workspace.root),
            credentials=str(credentials),
            journal=str(journal.path),
            compose=list(stack.compose.base),
            redis_port=stack.port(s.redis, target.ports.redis),
            started=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            up_s=round(time.monotonic() - started, 1),
        )
        kept.save()
        journal.event("stack", "kept", project=workspace.project, url=kept.url, release=name)
        return kept
    except BaseException:
        try:
            if stack is not None:
                stack.down()
        finally:
            workspace.remove()
        raise


def kept_runs() -> dict[str, Path | None]:
    """Runs left running by ``up``: run id -> its workspace (None when it is gone)."""

    runs: dict[str, Path | None] = {}
    client = docker_client()
    try:
        for c in list_containers(client, {"label": f"{KEPT_LABEL}=1"}):
            runs.setdefault(c.labels.get(RUN_LABEL, ""), None)
    finally:
        client.close()
    for run, (root, _) in run_workspaces().items():
        if (root / KEPT_FILE).is_file() or run in runs:
            runs[run] = root
    runs.pop("", None)
    return runs


def take_down(run: str | None = None) -> tuple[str, list[str]]:
    """Remove a stack ``up`` left running (the only one, or ``run``); returns its run id and
    what was removed: every object carrying its run label, the untagged intermediate images
    of its builds that nothing else uses, and its workspace."""

    kept = kept_runs()
    if run is None:
        if not kept:
            raise StackError("no stack left running by `rollback-drill up`")
        if len(kept) > 1:
            raise StackError(
                f"{len(kept)} stacks left running by `rollback-drill up` "
                f"({', '.join(sorted(kept))}): name one with --run ID"
            )
        run = next(iter(kept))
    client = docker_client()
    try:
        parents = built_image_parents(client, run, f"rbd-{run}")
        removed = cleanup(all_runs=True, only=[run])
        removed += prune_untagged(client, parents)
    finally:
        client.close()
    return run, removed


def describe(kept: KeptStack, *, show_credentials: bool = False) -> list[str]:
    """What ``up`` prints: where the stack answers, its credentials, how to reach and remove it."""
    creds = shlex.quote(kept.credentials)
    lines = [
        f"stack {kept.project} is up: release {kept.release} of {kept.target} ({kept.up_s:.0f} s)",
        f"  url:          {kept.url}  (nginx on 127.0.0.1; health: {kept.url}{kept.health})",
        f"  credentials:  {kept.credentials}  (mode 0600; `set -a; . {creds}; set +a`)",
        f"  compose:      {kept.compose_command} ps",
        f"  watch it:     set -a; . {creds}; set +a; rollback-drill watch --target "
        f"{shlex.quote(kept.target)} --base-url {kept.url} --project {kept.project} "
        f"--redis-port {kept.redis_port}",
        f"  journal:      {kept.journal}",
        f"  tear down:    rollback-drill down --run {kept.run_id}",
    ]
    if show_credentials:
        lines.append("  credentials (as asked):")
        lines += [
            f"    {line}"
            for line in Path(kept.credentials).read_text().splitlines()
            if not line.startswith("#")
        ]
    return lines
