"""A run's deployable tree: the target's compose directory as a git repository of releases.

The plan's full rollback checks out "the previous commit" and rebuilds. So each run gets a
private copy of the compose directory in which every release is a real commit:
``pre-hybrid`` (tagged also as the stable tag) and ``hybrid`` (the release overlay applied on
top). The ``.env`` file holds the run's generated secrets and labels; it is not committed,
exactly as a real deployment keeps its env file beside the checkout. It also pins the host
ports of nginx, PostgreSQL and Redis (``RBD_<NAME>_HOST_PORT``, each a port free on 127.0.0.1
when the workspace is made): a container that a fault stops and starts again, or that a
rollback recreates, comes back on the same address, as a real server's does.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from rollback_drill.errors import StackError
from rollback_drill.target import Target

RELEASE_FILE = "app/RELEASE"
STATE_DIR = ".rollback"


@dataclass(frozen=True)
class Secrets:
    postgres_password: str
    django_secret_key: str
    user_password: str
    admin_password: str

    @classmethod
    def generate(cls) -> Secrets:
        return cls(*(secrets.token_urlsafe(24) for _ in range(4)))

    def all(self) -> tuple[str, ...]:
        return (
            self.postgres_password,
            self.django_secret_key,
            self.user_password,
            self.admin_password,
        )


@dataclass
class Workspace:
    root: Path
    run_id: str
    project: str
    secrets: Secrets
    commits: dict[str, str]

    @property
    def env_file(self) -> Path:
        return self.root / ".env"

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
    cmd = ["git", "-c", "user.name=rollback-drill", "-c", "user.email=drill@localhost", *args]
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


def create_workspace(
    target: Target, *, run_id: str | None = None, base: Path | None = None
) -> Workspace:
    """Lay out the releases as commits and leave the previous (pre-hybrid) one checked out."""
    run_id = run_id or uuid.uuid4().hex[:10]
    project = f"rbd-{run_id}"
    root = Path(tempfile.mkdtemp(prefix=f"{project}-", dir=base))
    secrets_ = Secrets.generate()
    exclude = set(target.releases.exclude)
    rel = target.releases
    try:
        _copy_tree(target.compose_dir, root, exclude)
        (root / ".gitignore").write_text(f".env\n*.backup\n__pycache__/\n{STATE_DIR}/\n")
        _git(root, "init", "-q", "-b", "main")
        (root / RELEASE_FILE).write_text(rel.previous + "\n")
        _git(root, "add", "-A")
        _git(root, "commit", "-q", "-m", f"release {rel.previous}")
        _git(root, "tag", rel.previous)
        _git(root, "tag", rel.stable_tag)
        _copy_tree(target.overlay_dir(rel.next), root, set())
        (root / RELEASE_FILE).write_text(rel.next + "\n")
        _git(root, "add", "-A")
        _git(root, "commit", "-q", "-m", f"release {rel.next}")
        _git(root, "tag", rel.next)
        commits = {r: _git(root, "rev-parse", f"{r}^{{commit}}") for r in (rel.previous, rel.next)}
        _git(root, "checkout", "-q", "--detach", rel.previous)
        env = {
            "COMPOSE_PROJECT_NAME": project,
            "RBD_RUN_ID": run_id,
            "RBD_RUN_PID": str(os.getpid()),
            "POSTGRES_DB": target.database.name,
            "POSTGRES_USER": target.database.user,
            "POSTGRES_PASSWORD": secrets_.postgres_password,
            "DJANGO_SECRET_KEY": secrets_.django_secret_key,
            "DRILL_USER": target.users.user,
            "DRILL_ADMIN": target.users.admin,
            "DRILL_PASSWORD": secrets_.user_password,
            "DRILL_ADMIN_PASSWORD": secrets_.admin_password,
        }
        env |= {f"RBD_{name.upper()}_HOST_PORT": str(free_port()) for name in PINNED_PORTS}
        (root / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return Workspace(root, run_id, project, secrets_, commits)
