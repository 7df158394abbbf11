"""The drill target: what stack the drills run against, as data (schema version 2).

A team describes its own Compose stack in a target file, without editing any of its own files:
its compose files and project directory as they are (the run adds an override file of its own:
:mod:`rollback_drill.override`), which of its services plays each of the plan's roles, the
env its compose file reads (values, secrets the run generates, variables taken from the
drill's environment), the users the load logs in as, its releases, and its images' local
stand-ins where no registry answers. ``targets/reference.yaml`` describes the reference stack;
``docs/your-stack.md`` explains every field.

Values that depend on the run's env are written ``${NAME}`` (``database.password:
${POSTGRES_PASSWORD}``) and resolved when the run's workspace is made
(:meth:`Target.resolve`); a name that no env entry defines is an error when the file loads.
Every error is one line naming the file and the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from rollback_drill import release_refs
from rollback_drill.errors import TargetError
from rollback_drill.profile import ReadBack, TrafficProfile

SCHEMA = 2
ROLES = ("nginx", "wsgi", "asgi", "postgres", "redis")
_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Services(_Strict):
    """The plan's roles mapped to the target's Compose service names."""

    nginx: str
    wsgi: str
    asgi: str
    postgres: str
    redis: str


class Ports(_Strict):
    """Container ports of the roles (the run publishes them on 127.0.0.1)."""

    nginx: int = Field(gt=0, lt=65536)
    app: int = Field(gt=0, lt=65536)
    postgres: int = Field(gt=0, lt=65536)
    redis: int = Field(gt=0, lt=65536)
    asgi: int | None = Field(default=None, gt=0, lt=65536)  # when it differs from ``app``

    @property
    def asgi_port(self) -> int:
        return self.asgi or self.app


class Paths(_Strict):
    health: str
    admin: str
    nginx_conf: str
    nginx_conf_backup: str
    nginx_release_conf: str
    backups_dir: str


class Env(_Strict):
    """The env the target's compose files read, written into the run's env file."""

    values: dict[str, str] = {}
    generated: list[str] = []  # secrets: a fresh random value per run
    from_environment: list[str] = []  # taken from the drill's own environment

    @field_validator("generated", "from_environment")
    @classmethod
    def _names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not _ENV_NAME.match(name):
                raise ValueError(f"{name!r} is not an environment variable name")
        return names

    def defined(self) -> set[str]:
        return {*self.values, *self.generated, *self.from_environment}


class Database(_Strict):
    name: str
    user: str
    password: str


class Login(_Strict):
    username: str
    password: str


class Command(_Strict):
    """A command run in one service's container (``docker compose exec``)."""

    service: str  # a role (wsgi, asgi, ...) or a service name
    command: list[str] = Field(min_length=1)


class Users(_Strict):
    user: Login
    admin: Login
    create: Command | None = None  # creates both users (after migrations); None: they exist


class Releases(_Strict):
    """The releases the drills deploy, in one of two ways.

    As git refs (``overlays`` has no entry for ``next``): ``previous`` and ``next`` are refs
    (tag, branch, commit) of ``repository`` (default: the repository holding ``project_dir``;
    :func:`load_target` resolves it to the top of its work tree), each one's tree of
    ``project_dir`` a release. As directories: ``previous`` is ``project_dir`` as it is on disk
    and ``next`` is ``overlays[next]`` copied on top. Either way ``overlays`` may hold more
    releases (the faulty ones) copied on top of ``next``.
    """

    repository: Path | None = None
    previous: str
    next: str
    stable_tag: str
    overlays: dict[str, str] = {}
    exclude: list[str] = []
    marker_file: str | None = None  # a file the run writes the release's name into
    # a release (of ``overlays``) with a migration that cannot go back: the irreversible
    # whole drill deploys it (drills/test_whole_irreversible.py)
    irreversible: str | None = None

    @property
    def from_git(self) -> bool:
        """Whether ``previous`` and ``next`` are git refs (not a directory and its overlay)."""
        return self.next not in self.overlays


class Metrics(_Strict):
    """The app's Prometheus endpoint, scraped through nginx (optional): the signals only the
    app can tell. A trigger whose counters are not named here reads its black-box source."""

    path: str  # on the stack's nginx, e.g. /metrics
    interval_s: float = Field(default=1.0, gt=0)
    cache_hits: str | None = None  # counter names
    cache_misses: str | None = None

    @model_validator(mode="after")
    def _pairs(self) -> Metrics:
        if (self.cache_hits is None) != (self.cache_misses is None):
            raise ValueError("cache_hits and cache_misses go together")
        return self

    @property
    def cache_counters(self) -> tuple[str, str] | None:
        if self.cache_hits is None or self.cache_misses is None:
            return None
        return self.cache_hits, self.cache_misses


class AccessLogSpec(_Strict):
    """nginx's access log, an instrument independent of the load generator (the drills prove
    a fault's aimed level with it): the role or service whose container output holds it, and
    the ``log_format`` it is written in, copied from the nginx config."""

    service: str = "nginx"
    format: str = Field(min_length=1)


class Signals(_Strict):
    metrics: Metrics | None = None
    access_log: AccessLogSpec | None = None
    # PostgreSQL logs to its container's output (the official image does): the black-box source
    # of DB connection failures when the app names no failure cause. False (it logs to files
    # or syslog): that trigger is then not observable without traffic.headers.failure_cause.
    postgres_log: bool = True


class Rollback(_Strict):
    """What the executor takes from the stack where the plan writes a production number.

    ``phase2_wsgi_replicas``: Phase 2's "Scale up WSGI containers (if scaled down)", which the
    plan writes ``--scale backend-wsgi=4``: the WSGI replicas that serve all traffic once ASGI is
    stopped -- the count your host runs the previous release with (default: the plan's 4).
    Phase 2 never scales below the replicas running when it starts. The reference target sets
    1, the topology its baseline is read on and every other rollback path ends on: with the
    plan's 4 (three of them fresh, 8 gunicorn workers on 2 cores) the checklist compared
    another topology with that baseline (bench/phase2_replicas.py measures both).
    """

    phase2_wsgi_replicas: int = Field(default=4, ge=1, le=64)


class Target(_Strict):
    schema_: Literal[2] = Field(alias="schema")
    name: str
    project_dir: Path
    compose_files: list[str] = Field(min_length=1)
    env_file: str = ".env"
    services: Services
    ports: Ports
    images: dict[str, str] = {}  # registry image -> local image standing in for it
    limits: dict[str, str] = {}  # role or service -> memory limit ("512m") set by the override
    paths: Paths
    env: Env = Env()
    database: Database
    users: Users
    manage: list[str]
    migration_rollback: dict[str, str]
    releases: Releases
    traffic: TrafficProfile
    signals: Signals = Signals()
    rollback: Rollback = Rollback()

    @property
    def read_back(self) -> list[ReadBack]:
        """The profile's queries that read every write back ([] when it declares none)."""
        return list(self.traffic.ledger.read_back) if self.traffic.ledger else []

    @property
    def compose_dir(self) -> Path:
        """The project directory (the name the engine used before schema 2)."""
        return self.project_dir

    def service(self, role_or_service: str) -> str:
        """A role's service name; a service name is returned as it is."""
        return str(getattr(self.services, role_or_service, role_or_service))

    @property
    def release_subdir(self) -> str:
        """``project_dir`` relative to the releases' repository ("" at its top), in git's
        spelling; only for releases given as git refs."""
        if self.releases.repository is None:
            raise TargetError(f"target {self.name}: its releases are not git refs")
        path = self.project_dir.relative_to(self.releases.repository).as_posix()
        return "" if path == "." else path

    def overlay_dir(self, release: str) -> Path:
        if release not in self.releases.overlays:
            raise TargetError(f"target {self.name}: no overlay for release '{release}'")
        return self.project_dir / self.releases.overlays[release]

    def references(self) -> dict[str, str]:
        """Field path -> text of every field that may hold ``${NAME}`` references."""
        return {
            **{f"env.values.{name}": text for name, text in self.env.values.items()},
            "database.name": self.database.name,
            "database.user": self.database.user,
            "database.password": self.database.password,
            "users.user.username": self.users.user.username,
            "users.user.password": self.users.user.password,
            "users.admin.username": self.users.admin.username,
            "users.admin.password": self.users.admin.password,
        }


def interpolate(text: str, env: dict[str, str]) -> str:
    """``text`` with every ``${NAME}`` replaced by ``env[NAME]``."""
    return _REF.sub(lambda m: env[m.group(1)], text)


def load_target(path: Path) -> Target:
    """Load and validate a target file; relative paths are relative to the file."""
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise TargetError(f"{path}: target file not found") from None
    except yaml.YAMLError as exc:
        raise TargetError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise TargetError(f"{path}: a target file is a mapping of fields")
    if raw.get("schema") != SCHEMA:
        raise TargetError(
            f"{path}: field 'schema': this suite reads target schema {SCHEMA} "
            f"(found {raw.get('schema')!r}); docs/your-stack.md describes it"
        )
    try:
        target = Target.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise TargetError(f"{path}: field '{field}': {err['msg']}") from None
    defined = target.env.defined()
    for field, text in target.references().items():
        for name in _REF.findall(text):
            if name not in defined:
                raise TargetError(
                    f"{path}: field '{field}': ${{{name}}} is not defined in env.values, "
                    "env.generated or env.from_environment"
                )
    for key in target.limits:
        if key not in ROLES and not re.match(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$", key):
            raise TargetError(f"{path}: field 'limits.{key}': not a role or a service name")
    if target.users.create is not None and not target.users.create.service:
        raise TargetError(f"{path}: field 'users.create.service': empty")
    project_dir = (path.parent / target.project_dir).resolve()
    rel = target.releases
    if rel.next == rel.previous:
        raise TargetError(f"{path}: field 'releases.next': the same as releases.previous")
    if rel.stable_tag in (rel.previous, rel.next):
        raise TargetError(f"{path}: field 'releases.stable_tag': a name of its own is needed")
    if rel.irreversible is not None and rel.irreversible not in rel.overlays:
        raise TargetError(
            f"{path}: field 'releases.irreversible': '{rel.irreversible}' is not a release of "
            "releases.overlays (it is built on top of releases.next)"
        )
    if rel.irreversible is not None and rel.irreversible == rel.next:
        raise TargetError(
            f"{path}: field 'releases.irreversible': the same as releases.next (the drill "
            "deploys it on top of next)"
        )
    if rel.from_git:
        return _git_releases(path, target, project_dir)
    if rel.repository is not None:
        raise TargetError(
            f"{path}: field 'releases.repository': releases come from git refs or from "
            f"overlays, not both (overlays.{rel.next} makes '{rel.next}' a directory)"
        )
    if not project_dir.is_dir():
        raise TargetError(f"{path}: field 'project_dir': {project_dir} is not a directory")
    for name in target.compose_files:
        if not (project_dir / name).is_file():
            raise TargetError(f"{path}: compose file {project_dir / name} not found")
    return target.model_copy(update={"project_dir": project_dir})


def _git_releases(path: Path, target: Target, project_dir: Path) -> Target:
    """A target whose releases are git refs: its repository found, ``project_dir`` inside it,
    both refs resolved and holding the compose files (read, never checked out)."""
    rel = target.releases
    try:
        release_refs.git_binary()
    except TargetError as exc:
        raise TargetError(f"{path}: field 'releases': {exc}") from None
    field = "releases.repository" if rel.repository is not None else "project_dir"
    try:
        where = (path.parent / rel.repository) if rel.repository is not None else project_dir
        repository = release_refs.find_repository(where.resolve())
    except TargetError as exc:
        raise TargetError(
            f"{path}: field '{field}': {exc}; without overlays.{rel.next} the releases are git "
            "refs of releases.repository (default: the repository holding project_dir)"
        ) from None
    if not project_dir.is_relative_to(repository):
        raise TargetError(
            f"{path}: field 'project_dir': {project_dir} is not inside the releases' "
            f"repository {repository}"
        )
    for key in ("previous", "next", "stable_tag"):
        name = getattr(rel, key)
        if not release_refs.valid_tag_name(name):
            raise TargetError(
                f"{path}: field 'releases.{key}': '{name}' cannot name a tag in the run's "
                "workspace; give a tag, a branch or a commit id"
            )
    subdir = project_dir.relative_to(repository).as_posix()
    try:
        release_refs.read_releases(
            repository,
            "" if subdir == "." else subdir,
            [rel.previous, rel.next],
            list(target.compose_files),
        )
    except release_refs.RefError as exc:
        key = "previous" if exc.ref == rel.previous else "next"
        raise TargetError(f"{path}: field 'releases.{key}': {exc}") from None
    except TargetError as exc:
        raise TargetError(f"{path}: field 'releases.repository': {exc}") from None
    releases = rel.model_copy(update={"repository": repository})
    return target.model_copy(update={"project_dir": project_dir, "releases": releases})
