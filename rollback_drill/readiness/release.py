"""One release checked out in the review's workspace: the team's file each of its files is, the
line of a key in its YAML files (PyYAML's node marks), its services and the images here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rollback_drill.readiness.findings import shown
from rollback_drill.target import Target
from rollback_drill.workspace import Workspace


@dataclass
class Release:
    """One release checked out in the workspace, and the team's file each of its files is."""

    name: str
    target: Target
    ws: Workspace
    config: dict[str, Any] = field(default_factory=dict)  # docker compose config, merged

    def source(self, path: Path | str) -> Path:
        """The team's file a workspace file is (an overlay's for the next release)."""
        path = Path(path)
        try:
            rel = path.relative_to(self.ws.root) if path.is_absolute() else path
        except ValueError:
            return path
        if self.name in self.target.releases.overlays:  # else a git ref: the file as checked out
            overlay = self.target.overlay_dir(self.name) / rel
            if overlay.exists():
                return overlay
        return self.target.project_dir / rel

    def shown(self, path: Path | str) -> str:
        return shown(self.source(path))

    def role_of(self, service: str) -> str | None:
        s = self.target.services
        for role in ("nginx", "wsgi", "asgi", "postgres", "redis"):
            if getattr(s, role) == service:
                return role
        return None


def yaml_node(path: Path) -> yaml.Node | None:
    try:
        node: yaml.Node | None = yaml.compose(path.read_text(), Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError):
        return None
    return node


def _key(node: yaml.Node | None, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    """The (key, value) nodes of ``key`` in a mapping node."""
    if not isinstance(node, yaml.MappingNode):
        return None
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key and isinstance(v, yaml.Node):
            return k, v
    return None


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    found = _key(node, key)
    return found[1] if found else None


def locate(rel: Release, *keys: str) -> tuple[str, int | None]:
    """File and line of ``keys`` (services, web, ports, ...) in the release's compose files:
    the line of the deepest key found, in the last file that has it (Compose merges later
    files over earlier ones)."""
    best: tuple[int, Path, int] | None = None
    for name in rel.target.compose_files:
        path = rel.ws.root / name
        node = yaml_node(path)
        depth, line = 0, 0
        for key in keys:
            found = _key(node, key)
            if found is None:
                break
            node, depth, line = found[1], depth + 1, found[0].start_mark.line + 1
        if depth and (best is None or depth >= best[0]):
            best = (depth, path, line)
    if best is None:
        return rel.shown(rel.ws.root / rel.target.compose_files[0]), None
    return rel.shown(best[1]), best[2]


def item_line(rel: Release, keys: tuple[str, ...], index: int) -> tuple[str, int | None]:
    """File and line of item ``index`` of the sequence at ``keys``."""
    for name in reversed(rel.target.compose_files):
        path = rel.ws.root / name
        node = yaml_node(path)
        for key in keys:
            node = _child(node, key)
        if isinstance(node, yaml.SequenceNode) and index < len(node.value):
            return rel.shown(path), node.value[index].start_mark.line + 1
    return locate(rel, *keys)


def in_target(target_file: Path | None, name: str, *keys: str) -> tuple[str, int | None]:
    """File and line of ``keys`` in the target file (its name when the file is not known)."""
    if target_file is None:
        return f"target {name}", None
    node = yaml_node(target_file)
    line = None
    for key in keys:
        found = _key(node, key)
        if found is None:
            break
        node, line = found[1], found[0].start_mark.line + 1
    return shown(target_file), line


def services_of(rel: Release) -> dict[str, dict[str, Any]]:
    services = rel.config.get("services") or {}
    return {str(k): v for k, v in services.items() if isinstance(v, dict)}


def image_here(client: Any, name: str) -> Any:
    import docker.errors

    if not name:
        return None
    try:
        return client.images.get(name)
    except docker.errors.ImageNotFound:
        return None
