"""The run's own Compose override file: labels, loopback-only ports and limits on a stack the
suite did not write, without editing any of its files.

A team's compose files publish ports on every interface, pin ``container_name``s and carry no
labels of ours. The run adds one file after theirs (``-f theirs... -f <override>``), written
from ``docker compose config`` of the release checked out:

- every service, network and volume (not external) gets the run's labels, so cleanup finds it
  and nothing else;
- every published port is *replaced* (Compose's ``!override``) by a 127.0.0.1 one: the
  roles' ports on the host ports the workspace pinned (nginx, PostgreSQL, Redis) or a random
  free one (the app servers), any other service's on a random loopback port;
- a fixed ``container_name`` is reset (``!reset``): two projects could not coexist with it;
- the memory limits the target asks for are set (the plan's memory trigger needs a limit).

A release can add or drop services, so the override follows the checked-out tree: the
workspace's git ``post-checkout`` hook (installed by :mod:`rollback_drill.workspace`) runs
``python -m rollback_drill.override ROOT`` after every checkout -- also a checkout done by the
plan's own scripts -- and :class:`~rollback_drill.stack.Stack` writes it before bringing a stack
up. The parameters (labels, roles, pinned ports, limits) are kept in ``.rollback/override.json``.

No library writes Compose's ``!reset``/``!override`` tags; PyYAML does, given representers.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rollback_drill.compose import Compose
from rollback_drill.errors import DrillError, StackError

OVERRIDE_FILE = ".rollback/compose.override.yaml"
PARAMS_FILE = ".rollback/override.json"


@dataclass(frozen=True)
class OverrideParams:
    project: str
    compose_files: list[str]
    env_file: str
    labels: dict[str, str]
    # service -> [(container port, host port or 0 for a random one)] of the plan's roles
    role_ports: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    limits: dict[str, str] = field(default_factory=dict)  # service -> memory limit

    def save(self, root: Path) -> None:
        path = root / PARAMS_FILE
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, root: Path) -> OverrideParams:
        raw = json.loads((root / PARAMS_FILE).read_text())
        raw["role_ports"] = {
            svc: [(int(c), int(h)) for c, h in ports] for svc, ports in raw["role_ports"].items()
        }
        return cls(**raw)


class _Override(list[Any]):
    """A sequence Compose replaces instead of merging (``!override``)."""


class _Reset:
    """A field Compose removes from the merged service (``!reset``)."""


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # the labels mapping repeats: write it out each time, no YAML anchors


_Dumper.add_representer(_Override, lambda d, v: d.represent_sequence("!override", list(v)))
_Dumper.add_representer(_Reset, lambda d, v: d.represent_scalar("!reset", ""))


def _missing(labels: Mapping[str, str], spec: Mapping[str, Any] | None) -> dict[str, str]:
    """The run's labels that ``spec`` (a service, build, network or volume) does not carry.

    Only those are written: Compose v2.40 rejects an override that adds keys to a labels
    mapping the base file wrote as a YAML alias ("labels must be a mapping"), and a file that
    labels its objects itself (the reference stack) needs nothing added."""
    have = (spec or {}).get("labels") or {}
    return {key: value for key, value in labels.items() if have.get(key) != value}


def build_override(config: Mapping[str, Any], params: OverrideParams) -> dict[str, Any]:
    """The override for a project whose ``docker compose config --format json`` is ``config``."""
    labels = dict(params.labels)
    services: dict[str, Any] = {}
    for name, svc in sorted((config.get("services") or {}).items()):
        entry: dict[str, Any] = {}
        if missing := _missing(labels, svc):
            entry["labels"] = missing
        if svc.get("build") is not None and (missing := _missing(labels, svc["build"])):
            entry["build"] = {"labels": missing}
        if svc.get("container_name"):
            entry["container_name"] = _Reset()
        if name in params.role_ports:
            entry["ports"] = _Override(
                f"127.0.0.1:{host or ''}:{container}" for container, host in params.role_ports[name]
            )
        elif svc.get("ports"):
            targets = sorted({int(p["target"]) for p in svc["ports"] if p.get("target")})
            entry["ports"] = _Override(f"127.0.0.1::{port}" for port in targets)
        if name in params.limits:
            entry["mem_limit"] = params.limits[name]
        services[name] = entry
    out: dict[str, Any] = {"services": {k: v for k, v in services.items() if v}}
    for kind in ("networks", "volumes"):
        own = {
            name: {"labels": missing}
            for name, spec in sorted((config.get(kind) or {}).items())
            if not (spec or {}).get("external") and (missing := _missing(labels, spec))
        }
        if own:
            out[kind] = own
    return out


def render(override: Mapping[str, Any]) -> str:
    header = "# Written by rollback-drill for this run (rollback_drill/override.py): do not edit.\n"
    return header + yaml.dump(dict(override), Dumper=_Dumper, sort_keys=False)


def project_config(root: Path, params: OverrideParams) -> dict[str, Any]:
    """``docker compose config`` of the target's own files as checked out (no override)."""
    compose = Compose(params.project, root, params.compose_files, root / params.env_file)
    res = compose.run("config", "--format", "json", timeout=60)
    if not res.ok:
        raise StackError(f"docker compose config of {root}: {res.tail(1) or res.returncode}")
    config: dict[str, Any] = json.loads(res.stdout)
    return config


def write_override(root: Path) -> Path:
    """Write the override for the tree checked out in ``root``; returns its path."""
    params = OverrideParams.load(root)
    path = root / OVERRIDE_FILE
    path.write_text(render(build_override(project_config(root, params), params)))
    return path


def main(argv: list[str] | None = None) -> int:
    """The workspace's post-checkout hook: ``python -m rollback_drill.override ROOT``."""
    args = sys.argv[1:] if argv is None else argv
    try:
        write_override(Path(args[0]))
    except (DrillError, OSError, ValueError, IndexError) as exc:
        print(f"rollback-drill: override not written: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
