"""The plan's Configuration Backup Procedure as code, verified, and the gate on deployments.

Before a deployment the plan backs up five things; here each is taken for real and read back:

==============  ==========================================  ==================================
item            taken                                       verified
==============  ==========================================  ==================================
nginx config    ``cp nginx.conf nginx.conf.pre-hybrid.bak``  sha256, ``nginx -t -c <backup>``
                inside the nginx container
compose files   ``docker-compose.yml.backup`` (workspace)   sha256
env file        ``.env.backup`` (workspace)                 sha256
commit          ``git rev-parse HEAD`` to                   a commit of the workspace
                ``pre-migration-commit.txt``
database        ``pg_dump -Fc`` inside the postgres         ``pg_restore --list`` reads it and
                container, into its ``/backups`` volume     lists table data; sha256
==============  ==========================================  ==================================

The database dump is in pg_dump's *custom* format, so that ``pg_restore`` can read it -- the
plan's own dump is plain SQL redirected on the host (plan defects ``backup-dump-plain-sql``,
``backup-dump-host-path``). A manifest (``backup-manifest.json`` in the workspace's state
directory) records what was taken; :func:`verify_backups` re-checks it and raises
:class:`~rollback_drill.errors.BackupError` in one line when anything is missing or unreadable:
a backup that cannot be restored is an error, never a warning.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rollback_drill import nginx_mount
from rollback_drill.compose import CommandResult
from rollback_drill.errors import BackupError
from rollback_drill.stack import Stack

__all__ = [
    "COMMIT_FILE",
    "MANIFEST",
    "BackupSet",
    "load_backups",
    "take_backups",
    "verify_backups",
]

COMMIT_FILE = "pre-migration-commit.txt"
MANIFEST = "backup-manifest.json"
DUMP_PREFIX = "pre-migration-"
DUMP_SUFFIX = ".dump"
BACKUP_SUFFIX = ".backup"


@dataclass(frozen=True)
class BackupSet:
    """What the backup procedure took; times are epoch seconds."""

    created: float
    release: str
    commit: str
    commit_file: str  # host path
    nginx_conf: str  # in the nginx container
    nginx_backup: str  # in the nginx container
    nginx_sha256: str
    dump: str  # in the postgres container
    dump_sha256: str
    dump_started: float  # pg_dump started (its snapshot is taken after this)
    dump_finished: float
    dump_table_data: int  # TABLE DATA entries pg_restore --list found
    files: dict[str, str] = field(default_factory=dict)  # workspace-relative backup → sha256

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> BackupSet:
        return cls(**json.loads(text))


def manifest_path(stack: Stack) -> Path:
    return stack.workspace.state_dir / MANIFEST


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(stack: Stack, kind: str, name: str, *args: str, timeout: float = 120) -> CommandResult:
    """A recorded ``docker compose`` call: command, exit status, duration and output tail."""
    with stack.journal.step(kind, name) as step:
        res = stack.compose.run(*args, timeout=timeout)
        step.data.update(
            cmd=res.describe(),
            returncode=res.returncode,
            cmd_duration_s=round(res.duration_s, 3),
            tail=res.tail(),
        )
    return res


def _exec(stack: Stack, kind: str, name: str, service: str, *cmd: str) -> CommandResult:
    return _run(stack, kind, name, "exec", "-T", service, *cmd)


def _container_sha256(stack: Stack, service: str, path: str) -> str:
    res = _exec(stack, "backup", f"sha256 {path}", service, "sha256sum", path)
    if not res.ok:
        raise BackupError(f"backup {path} in {service}: cannot be read ({res.tail(1)})")
    return res.stdout.split()[0]


def take_backups(stack: Stack) -> BackupSet:
    """Run the Configuration Backup Procedure on the running stack, then verify it."""
    t, ws = stack.target, stack.workspace
    s = t.services
    with stack.journal.step("backup", "procedure", release=stack.current_release()) as step:
        created = time.time()
        # 1. Nginx configuration (inside the nginx container; a bind-mounted one: its file)
        mounted = nginx_mount.mount_source(stack)
        nginx_backup = t.paths.nginx_conf_backup
        if mounted is not None:
            nginx_backup = str(nginx_mount.backup_path(stack))
            with stack.journal.step("backup", "nginx", source=str(mounted)):
                shutil.copy2(mounted, nginx_backup)
            nginx_sha = _sha256(Path(nginx_backup))
        else:
            res = _exec(stack, "backup", "nginx", s.nginx, "cp", t.paths.nginx_conf, nginx_backup)
            if not res.ok:
                raise BackupError(f"backup of {t.paths.nginx_conf} failed: {res.tail(1)}")
            nginx_sha = _container_sha256(stack, s.nginx, nginx_backup)
        # 2. Docker Compose configuration, 3. environment file (beside them, in the workspace)
        files: dict[str, str] = {}
        for name in [*t.compose_files, ws.env_file.name]:
            src = ws.root / name
            dst = src.with_name(src.name + BACKUP_SUFFIX)
            with stack.journal.step("backup", f"file {name}"):
                try:
                    shutil.copy2(src, dst)
                except OSError as exc:
                    raise BackupError(f"backup of {name} failed: {exc}") from None
            files[dst.relative_to(ws.root).as_posix()] = _sha256(dst)
        # 4. Git commit hash
        commit = ws.head()
        commit_file = ws.state_dir / COMMIT_FILE
        commit_file.write_text(commit + "\n")
        # 5. Database snapshot: custom format, inside the container, so pg_restore can read it
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(created))
        dump = f"{t.paths.backups_dir.rstrip('/')}/{DUMP_PREFIX}{stamp}{DUMP_SUFFIX}"
        db = ws.database
        _exec(stack, "backup", "backups dir", s.postgres, "mkdir", "-p", t.paths.backups_dir)
        dump_started = time.time()
        res = _exec(
            stack,
            "backup",
            "pg_dump",
            s.postgres,
            "pg_dump",
            "-U",
            db.user,
            "-d",
            db.name,
            "-Fc",
            "-f",
            dump,
        )
        dump_finished = time.time()
        if not res.ok:
            raise BackupError(f"pg_dump of {db.name} into {dump} failed: {res.tail(1)}")
        backups = BackupSet(
            created=created,
            release=stack.current_release(),
            commit=commit,
            commit_file=str(commit_file),
            nginx_conf=t.paths.nginx_conf,
            nginx_backup=nginx_backup,
            nginx_sha256=nginx_sha,
            dump=dump,
            dump_sha256=_container_sha256(stack, s.postgres, dump),
            dump_started=dump_started,
            dump_finished=dump_finished,
            dump_table_data=0,
            files=files,
        )
        table_data = _check_dump(stack, backups)
        backups = BackupSet(**{**asdict(backups), "dump_table_data": table_data})
        manifest_path(stack).write_text(backups.to_json())
        verify_backups(stack, backups)
        step.data.update(commit=commit, dump=dump, table_data=table_data)
    return backups


def load_backups(stack: Stack) -> BackupSet:
    """The stack's backup set from its manifest, or :class:`BackupError` when there is none."""
    path = manifest_path(stack)
    try:
        return BackupSet.from_json(path.read_text())
    except FileNotFoundError:
        raise BackupError(
            f"no backup set for {stack.project}: run the Configuration Backup Procedure "
            "(rollback_drill.backup.take_backups) before deploying"
        ) from None
    except (ValueError, TypeError) as exc:
        raise BackupError(f"backup manifest {path} is unreadable: {exc}") from None


def verify_backups(stack: Stack, backups: BackupSet | None = None) -> BackupSet:
    """Re-check every item of the set; :class:`BackupError` (one line) at the first problem."""
    b = backups if backups is not None else load_backups(stack)
    t, ws = stack.target, stack.workspace
    s = t.services
    with stack.journal.step("backup", "verify", dump=b.dump):
        # database first: a dump pg_restore cannot read is the worst case
        table_data = _check_dump(stack, b)
        if table_data < 1:
            raise BackupError(f"backup dump {b.dump}: pg_restore --list shows no table data")
        if _container_sha256(stack, s.postgres, b.dump) != b.dump_sha256:
            raise BackupError(f"backup dump {b.dump} changed since it was taken (sha256 differs)")
        on_host = Path(b.nginx_backup).is_absolute() and Path(b.nginx_backup).is_file()
        if on_host and b.nginx_backup.startswith(str(ws.root)):  # a bind-mounted config's
            if _sha256(Path(b.nginx_backup)) != b.nginx_sha256:
                raise BackupError(f"nginx backup {b.nginx_backup} changed since it was taken")
            res = nginx_mount.test_config(stack, Path(b.nginx_backup))
        else:
            if _container_sha256(stack, s.nginx, b.nginx_backup) != b.nginx_sha256:
                raise BackupError(f"nginx backup {b.nginx_backup} changed since it was taken")
            res = _exec(
                stack,
                "backup",
                "nginx -t backup",
                s.nginx,
                "nginx",
                "-t",
                "-q",
                "-c",
                b.nginx_backup,
            )
        if not res.ok:
            raise BackupError(f"nginx backup {b.nginx_backup} fails nginx -t: {res.tail(1)}")
        for rel, digest in b.files.items():
            path = ws.root / rel
            if not path.is_file():
                raise BackupError(f"backup file {path} is missing")
            if _sha256(path) != digest:
                raise BackupError(f"backup file {path} changed since it was taken")
        try:
            recorded = Path(b.commit_file).read_text().strip()
        except OSError:
            raise BackupError(f"commit file {b.commit_file} is missing") from None
        if recorded != b.commit:
            raise BackupError(f"commit file {b.commit_file} says {recorded!r}, not {b.commit}")
        try:
            ws.git("cat-file", "-e", f"{b.commit}^{{commit}}")
        except Exception:
            raise BackupError(f"backed-up commit {b.commit} is not in {ws.root}") from None
    return b


def _check_dump(stack: Stack, b: BackupSet) -> int:
    """Number of TABLE DATA entries ``pg_restore --list`` reads from the dump, or BackupError."""
    res = _exec(
        stack,
        "backup",
        "pg_restore --list",
        stack.target.services.postgres,
        "pg_restore",
        "--list",
        b.dump,
    )
    if not res.ok:
        raise BackupError(f"backup dump {b.dump} cannot be restored: {res.tail(1)}")
    return sum(" TABLE DATA " in line for line in res.stdout.splitlines())
