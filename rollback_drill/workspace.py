"""A run's deployable tree: the target's project directory as a git repository of releases.

The plan's full rollback checks out "the previous commit" and rebuilds. So each run gets a
private git repository in which every release is a real commit, tagged with its name: the
previous one (tagged also as the stable tag) and the next. Releases given as git refs are
each ref's tree of the project directory, copied from the team's repository without touching
its working tree, index or refs (:mod:`rollback_drill.release_refs`); releases given as
directories are the project directory as it is on disk and the next one's overlay applied on
top. The env file
(the target's ``env_file``, ``.env`` by default) holds the env the target declares -- its
fixed values, the secrets generated for this run, the variables taken from the drill's own
environment -- and the run's labels; it is not committed, exactly as a real deployment keeps
its env file beside the checkout. The host ports of nginx, PostgreSQL and Redis are pinned
when the workspace is made (each a port free on 127.0.0.1; also in the env file as
``RBD_<NAME>_HOST_PORT``): a container that a fault stops and starts again, or that a
rollback recreates, comes back on the same address, as a real server's does.

The run's Compose override (:mod:`rollback_drill.override`) follows every checkout through the
repository's ``post-checkout`` hook, so a release that adds a service gets its labels too.
A workspace that cannot be made says why without the run's secrets (``docker compose config``
failing in that hook may quote one): they were never anywhere else to be scrubbed from.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from rollback_drill import release_refs
from rollback_drill.errors import DrillError, StackError, TargetError
from rollback_drill.journal import Scrubber
from rollback_drill.override import OverrideParams
from rollback_drill.target import Target, interpolate
from rollback_drill.traffic import Credentials

STATE_DIR = ".rollback"
LABEL = "io.rollback-drill"
RUN_LABEL = "io.rollback-drill.run"
PID_LABEL = "io.rollback-drill.pid"
KEPT_LABEL = "io.rollback-drill.kept"  # a stack `up` left running on purpose
KEPT_FILE = f"{STATE_DIR}/kept.json"  # and the state file of its workspace


@dataclass(frozen=True)
class DatabaseAccess:
    name: str
    user: str
    password: str

    def __repr__(self) -> str:
        return f"DatabaseAccess({self.name!r}, user={self.user!r}, password=***)"


@dataclass(frozen=True)
class Secrets:
    """The run's secret values: generated ones and those taken from the environment."""

    values: tuple[str, ...]

    def all(self) -> tuple[str, ...]:
        return self.values

    def __repr__(self) -> str:
        return f"Secrets({len(self.values)} values)"


@dataclass
class Workspace:
    root: Path
    run_id: str
    project: str
    secrets: Secrets
    commits: dict[str, str]
    user: Credentials
    admin: Credentials
    database: DatabaseAccess
    env_name: str = ".env"  # the env file, relative to ``root``

    @property
    def env_file(self) -> Path:
        return self.root / self.env_name

    @property
    def state_dir(self) -> Path:
        """Operator state beside the checkout, never committed: the deployment lock, the
        backup manifest and commit file, the rollback announcements (``.rollback/``)."""
        path = self.root / STATE_DIR
        path.mkdir(exist_ok=True)
        return path

    def git(self, *args: str) -> str:
        return _git(self.root, *args)

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def checkout(self, rev: str) -> str:
        self.git("checkout", "-q", "--detach", rev)
        return self.head()

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _git(cwd: Path, *args: str) -> str:
    identity = ["-c", "user.name=rollback-drill", "-c", "user.email=drill@localhost"]
    cmd = [release_refs.git_binary(), *identity, *args]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise StackError(f"git {' '.join(args)} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return proc.stdout.strip()


def _copy_tree(src: Path, dst: Path, exclude: set[str]) -> None:
    for item in src.iterdir():
        if item.name in exclude or item.name == "__pycache__":
            continue
        target = dst / item.name
        if item.is_dir():
            shutil.copytree(
                item, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(item, target)


PINNED_PORTS = ("nginx", "postgres", "redis")


def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_env(target: Target) -> tuple[dict[str, str], tuple[str, ...]]:
    """The target's env for one run, and its secret values: fixed values, a fresh random value
    for each generated name, and the names taken from this process's environment."""
    env = dict(target.env.values)
    env |= {name: secrets.token_urlsafe(24) for name in target.env.generated}
    missing = [n for n in target.env.from_environment if not os.environ.get(n)]
    if missing:
        raise TargetError(
            f"target {target.name}: env.from_environment: {', '.join(missing)} not set in the "
            "drill's environment"
        )
    taken = {name: os.environ[name] for name in target.env.from_environment}
    env |= taken
    # a value may repeat another, secrets included: DATABASE_URL: postgres://u:${DB_PASSWORD}@db/x
    env |= {name: interpolate(text, env) for name, text in target.env.values.items()}
    hidden = {env[n] for n in target.env.generated} | set(taken.values())
    return env, tuple(sorted(v for v in hidden if v))


def mark_release(root: Path, marker_file: str | None, release: str) -> None:
    """Write the release's name into the target's marker file, if it has one."""
    if marker_file:
        (root / marker_file).write_text(release + "\n")


def _install_override_hook(root: Path) -> None:
    hook = root / ".git" / "hooks" / "post-checkout"
    hook.parent.mkdir(parents=True, exist_ok=True)
    python = shlex.quote(sys.executable)
    hook.write_text(
        "#!/bin/sh\n# rollback-drill: the run's Compose override follows the checked-out release\n"
        f'exec {python} -m rollback_drill.override "$(git rev-parse --show-toplevel)"\n'
    )
    hook.chmod(0o755)


def _init(root: Path) -> None:
    """A repository of the run's own: no template of the user's (``init.templateDir`` hooks),
    its hooks in its own ``.git/hooks`` whatever a global ``core.hooksPath`` says (the override
    follows checkouts by one of them), commits and tags never signed."""
    _git(root, "init", "-q", "-b", "main", "--template=")
    for key, value in (
        ("core.hooksPath", ".git/hooks"),
        ("commit.gpgSign", "false"),
        ("tag.gpgSign", "false"),
    ):
        _git(root, "config", key, value)
    (root / ".git" / "info").mkdir(exist_ok=True)


def _releases_from_overlays(target: Target, root: Path) -> None:
    """``previous``: the project directory as it is on disk (minus ``exclude``); ``next``: its
    overlay copied on top."""
    rel = target.releases
    _copy_tree(target.project_dir, root, set(rel.exclude))
    (root / ".gitignore").write_text(f"{target.env_file}\n*.backup\n__pycache__/\n{STATE_DIR}/\n")
    _init(root)
    mark_release(root, rel.marker_file, rel.previous)
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", f"release {rel.previous}")
    _git(root, "tag", rel.previous)
    _copy_tree(target.overlay_dir(rel.next), root, set())
    mark_release(root, rel.marker_file, rel.next)
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", f"release {rel.next}")
    _git(root, "tag", rel.next)


def _releases_from_git(target: Target, root: Path) -> None:
    """``previous`` and ``next``: each ref's tree of ``project_dir`` in the target's repository,
    as it is committed (:mod:`rollback_drill.release_refs`), minus ``exclude`` and the env file
    (the run writes its own), plus the marker file if the target has one."""
    rel = target.releases
    assert rel.repository is not None  # load_target resolves it for releases from git
    subdir = target.release_subdir
    refs = [rel.previous, rel.next]
    releases = release_refs.read_releases(rel.repository, subdir, refs, list(target.compose_files))
    _init(root)
    (root / ".git" / "info" / "exclude").write_text(
        f"/{target.env_file}\n*.backup\n__pycache__/\n/{STATE_DIR}/\n"
    )
    release_refs.copy_trees(rel.repository, [r.tree for r in releases], root)
    dropped = [*rel.exclude, target.env_file]
    for release in releases:
        _git(root, "read-tree", "-u", "--reset", release.tree)
        _git(
            root,
            "rm",
            "-r",
            "-q",
            "-f",
            "--ignore-unmatch",
            "--",
            *(f":(literal){n}" for n in dropped),
        )
        if rel.marker_file:
            mark_release(root, rel.marker_file, release.name)
            _git(root, "add", "-f", "--", f":(literal){rel.marker_file}")
        where = f"{rel.repository}" + (f", directory {subdir}" if subdir else "")
        message = f"release {release.name}\n\n{release.name} = {release.commit} of {where}"
        _git(root, "commit", "-q", "--allow-empty", "-m", message)
        _git(root, "update-ref", f"refs/tags/{release.name}", "HEAD")
    # only the releases' tags: a ref named like the branch (``next: main``) stays unambiguous
    _git(root, "checkout", "-q", "--detach")
    _git(root, "branch", "-q", "-D", "main")


def create_workspace(
    target: Target, *, run_id: str | None = None, base: Path | None = None
) -> Workspace:
    """Lay out the releases as commits and leave the previous one checked out."""
    run_id = run_id or uuid.uuid4().hex[:10]
    project = f"rbd-{run_id}"
    env, hidden = run_env(target)
    root = Path(tempfile.mkdtemp(prefix=f"{project}-", dir=base))
    rel = target.releases
    try:
        if rel.from_git:
            _releases_from_git(target, root)
        else:
            _releases_from_overlays(target, root)
        _git(root, "update-ref", f"refs/tags/{rel.stable_tag}", f"{rel.previous}^{{commit}}")
        commits = {r: _git(root, "rev-parse", f"{r}^{{commit}}") for r in (rel.previous, rel.next)}
        labels = {LABEL: "1", RUN_LABEL: run_id, PID_LABEL: str(os.getpid())}
        ports = {name: free_port() for name in PINNED_PORTS}
        env |= {
            "COMPOSE_PROJECT_NAME": project,
            "RBD_RUN_ID": run_id,
            "RBD_RUN_PID": str(os.getpid()),
        }
        env |= {f"RBD_{name.upper()}_HOST_PORT": str(port) for name, port in ports.items()}
        (root / target.env_file).write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        s, p = target.services, target.ports
        role_ports: dict[str, list[tuple[int, int]]] = {
            s.nginx: [(p.nginx, ports["nginx"])],
            s.postgres: [(p.postgres, ports["postgres"])],
            s.redis: [(p.redis, ports["redis"])],
        }
        role_ports.setdefault(s.wsgi, [(p.app, 0)])
        role_ports.setdefault(s.asgi, [(p.asgi_port, 0)])
        OverrideParams(
            project,
            list(target.compose_files),
            target.env_file,
            labels,
            role_ports,
            {target.service(key): limit for key, limit in target.limits.items()},
        ).save(root)
        _install_override_hook(root)
        _git(root, "checkout", "-q", "--detach", rel.previous)
        resolved = {field: interpolate(text, env) for field, text in target.references().items()}
    except BaseException as exc:
        shutil.rmtree(root, ignore_errors=True)
        if isinstance(exc, DrillError):  # a checkout's hook quotes compose, which quotes the env
            scrubber = Scrubber()
            scrubber.redact(*hidden)
            exc.args = tuple(scrubber.scrub(list(exc.args)))
        raise
    return Workspace(
        root,
        run_id,
        project,
        Secrets(tuple(sorted({*hidden, *(resolved[f] for f in _PASSWORDS)} - {""}))),
        commits,
        Credentials(resolved["users.user.username"], resolved["users.user.password"]),
        Credentials(resolved["users.admin.username"], resolved["users.admin.password"]),
        DatabaseAccess(
            resolved["database.name"], resolved["database.user"], resolved["database.password"]
        ),
        target.env_file,
    )


_PASSWORDS = ("database.password", "users.user.password", "users.admin.password")
