"""The drill target: what stack the drills run against, as data.

Service names, ports, paths and credentials' names come from a target file (YAML, validated
with pydantic), never from literals in the engine, so the same drills can point at a team's own
Compose-based staging stack. ``targets/reference.yaml`` describes the reference stack.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rollback_drill.errors import TargetError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Services(_Strict):
    nginx: str
    wsgi: str
    asgi: str
    postgres: str
    redis: str


class Ports(_Strict):
    nginx: int = Field(gt=0, lt=65536)
    app: int = Field(gt=0, lt=65536)
    postgres: int = Field(gt=0, lt=65536)
    redis: int = Field(gt=0, lt=65536)


class Paths(_Strict):
    health: str
    admin: str
    nginx_conf: str
    nginx_conf_backup: str
    nginx_release_conf: str
    backups_dir: str


class Database(_Strict):
    user: str
    name: str


class Users(_Strict):
    user: str
    admin: str


class Releases(_Strict):
    previous: str
    next: str
    stable_tag: str
    overlays: dict[str, str]
    exclude: list[str] = []


class Target(_Strict):
    name: str
    compose_dir: Path
    compose_files: list[str]
    services: Services
    ports: Ports
    paths: Paths
    database: Database
    users: Users
    manage: list[str]
    migration_rollback: dict[str, str]
    releases: Releases

    def overlay_dir(self, release: str) -> Path:
        if release not in self.releases.overlays:
            raise TargetError(f"target {self.name}: no overlay for release '{release}'")
        return self.compose_dir / self.releases.overlays[release]


def load_target(path: Path) -> Target:
    """Load and validate a target file; relative paths are relative to the file."""
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise TargetError(f"{path}: target file not found") from None
    except yaml.YAMLError as exc:
        raise TargetError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    try:
        target = Target.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise TargetError(f"{path}: field '{field}': {err['msg']}") from None
    compose_dir = (path.parent / target.compose_dir).resolve()
    for name in target.compose_files:
        if not (compose_dir / name).is_file():
            raise TargetError(f"{path}: compose file {compose_dir / name} not found")
    return target.model_copy(update={"compose_dir": compose_dir})
