"""Readiness review: what in a target's files and in the plan will break a rollback, found
before anything is deployed (``rollback-drill check-target --deep``).

In a private workspace (the releases as commits, :mod:`rollback_drill.workspace`), for the
previous and the next release:

- ``docker compose config`` of the team's own files (without the run's override) resolves: no
  variable unset or empty, every build context, Dockerfile and bind-mounted file exists, every
  image without a build section is here (or its stand-in in the target's ``images``);
- the release's nginx config passes ``nginx -t`` in a throwaway container of the target's nginx
  image (the service's image, else its Dockerfile's base): no network, every Compose service
  name resolvable through ``--add-host NAME:127.0.0.1``, the run's labels, removed after;
- nginx ``limit_req`` zones slower than the drill's load from one address, ``limit_conn`` below
  its concurrency, ports published beyond loopback, fixed ``container_name``s, a restart policy
  on the ASGI role that Phase 1 stops, and any of the plan's five roles without a health check;

and for the plan (its scripts in ``scripts/``, run as :mod:`rollback_drill.plan_scripts` runs
them): the files its rollback scripts and Phase 5 read against the files the backup procedure
writes (:mod:`rollback_drill.backup` and ``backup-config.sh``; the plan's own
``nginx.conf.backup`` vs ``nginx.conf.pre-hybrid.bak``), the services its ``docker-compose``
calls name, and the health path it curls. With ``start`` the previous release is brought up as
``rollback-drill up`` does: the health paths must answer 200, one request of each category of
the traffic profile must answer as the profile says (WebSocket excepted: the drill keeps it off
on the previous release), and the backup procedure runs for real, after which every file the
rollback reads must exist.

A :class:`Finding` names its severity, file and line (YAML: the key's line from PyYAML's node
marks; nginx: the directive's line; the plan: the script's line), the plan step it breaks and
the fix. Error findings make ``check-target --deep`` exit with
:class:`~rollback_drill.errors.NotReady`'s status.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from rollback_drill.compose import Compose
from rollback_drill.errors import StackError
from rollback_drill.target import Target
from rollback_drill.workspace import (
    LABEL,
    PID_LABEL,
    RUN_LABEL,
    STATE_DIR,
    Workspace,
    create_workspace,
)

__all__ = ["DEFAULT_LOAD_RATE", "Finding", "Review", "check_deep", "review"]

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")
DEFAULT_LOAD_RATE = 40.0  # requests/s: the drills' default (--drill-load-rate, RBD_LOAD_RATE)
DEFAULT_CONCURRENCY = 64  # the load's bound on requests in flight (LoadConfig.max_concurrency)
_SCRIPTS = Path(__file__).with_name("scripts")
_ROLLBACK_SCRIPTS = ("rollback-config.sh", "rollback-full.sh")
_BACKUP_SCRIPT = "backup-config.sh"
_UNSET = re.compile(r'The \\?"([A-Za-z_][A-Za-z0-9_]*)\\?" variable is not set')
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


@dataclass(frozen=True)
class Finding:
    """One thing that will break a rollback (or a drill of it), where it is and what to do."""

    severity: Severity
    check: str  # a short id: nginx-t, unset-variable, rate-limit, backup-name, ...
    file: str  # the team's file (relative to the current directory when under it)
    line: int | None
    message: str
    breaks: str  # the plan step (or the drill's step) it breaks
    fix: str
    releases: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def lines(self) -> list[str]:
        rel = f" [{', '.join(self.releases)}]" if self.releases else ""
        return [
            f"{self.severity:<7} {self.where}{rel}: {self.message}",
            f"        breaks: {self.breaks}",
            f"        fix: {self.fix}",
        ]


@dataclass
class Review:
    target: str
    releases: tuple[str, ...]
    findings: list[Finding] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)  # what was checked (or not, and why)
    duration_s: float = 0.0
    run_id: str = ""  # the label of what the review created (all removed when it returns)

    def add(self, finding: Finding) -> None:
        for i, old in enumerate(self.findings):
            same = (old.check, old.file, old.line, old.message)
            if same == (finding.check, finding.file, finding.line, finding.message):
                merged = tuple(dict.fromkeys([*old.releases, *finding.releases]))
                self.findings[i] = Finding(**{**asdict(old), "releases": merged})
                return
        self.findings.append(finding)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    def sorted(self) -> list[Finding]:
        return sorted(
            self.findings, key=lambda f: (SEVERITIES.index(f.severity), f.file, f.line or 0)
        )

    def lines(self) -> list[str]:
        out = [f"readiness of {self.target} (releases {', '.join(self.releases)}):"]
        out += [f"  checked: {c}" for c in self.checked]
        for f in self.sorted():
            out += f.lines()
        counts = {s: sum(f.severity == s for f in self.findings) for s in SEVERITIES}
        out.append(
            f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info "
            f"in {self.duration_s:.1f} s"
        )
        return out

    def to_json(self) -> str:
        data = {
            "target": self.target,
            "releases": list(self.releases),
            "duration_s": round(self.duration_s, 2),
            "checked": self.checked,
            "findings": [{**asdict(f), "releases": list(f.releases)} for f in self.sorted()],
        }
        return json.dumps(data, indent=2)


# -- where a workspace file comes from -----------------------------------------------------


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@dataclass
class _Release:
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
        return _shown(self.source(path))

    def role_of(self, service: str) -> str | None:
        s = self.target.services
        for role in ("nginx", "wsgi", "asgi", "postgres", "redis"):
            if getattr(s, role) == service:
                return role
        return None


# -- YAML lines ----------------------------------------------------------------------------


def _yaml_node(path: Path) -> yaml.Node | None:
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


def _locate(rel: _Release, *keys: str) -> tuple[str, int | None]:
    """File and line of ``keys`` (services, web, ports, ...) in the release's compose files:
    the line of the deepest key found, in the last file that has it (Compose merges later
    files over earlier ones)."""
    best: tuple[int, Path, int] | None = None
    for name in rel.target.compose_files:
        path = rel.ws.root / name
        node = _yaml_node(path)
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


def _item_line(rel: _Release, keys: tuple[str, ...], index: int) -> tuple[str, int | None]:
    """File and line of item ``index`` of the sequence at ``keys``."""
    for name in reversed(rel.target.compose_files):
        path = rel.ws.root / name
        node = _yaml_node(path)
        for key in keys:
            node = _child(node, key)
        if isinstance(node, yaml.SequenceNode) and index < len(node.value):
            return rel.shown(path), node.value[index].start_mark.line + 1
    return _locate(rel, *keys)


# -- docker compose config -----------------------------------------------------------------


def _compose_config(rel: _Release, review: Review) -> None:
    t, ws = rel.target, rel.ws
    compose = Compose(ws.project, ws.root, list(t.compose_files), ws.env_file)
    res = compose.run("config", "--format", "json", timeout=60)
    first = rel.shown(ws.root / t.compose_files[0])
    if not res.ok:
        said = res.tail(1).replace(str(ws.root) + "/", "")
        line = re.search(r"yaml: line (\d+)", said)
        review.add(
            Finding(
                "error",
                "compose-config",
                first,
                int(line.group(1)) if line else None,
                f"docker compose config fails: {said}",
                "every phase (each runs docker-compose on these files)",
                "make `docker compose config` pass with the target's env file",
                (rel.name,),
            )
        )
        return
    rel.config = json.loads(res.stdout)
    unset = sorted(set(_UNSET.findall(res.stderr)))
    env = _env_values(ws.env_file)
    for name in t.compose_files:
        path = ws.root / name
        for lineno, text in enumerate(path.read_text().splitlines(), 1):
            if text.lstrip().startswith("#"):
                continue
            for m in _VAR.finditer(text.replace("$$", "")):
                var, mod = m.group(1) or m.group(3), m.group(2) or ""
                if mod.startswith((":-", ":?", ":+")):
                    continue  # a default (or an error of its own) for unset and empty
                if mod.startswith(("-", "?", "+")) and env.get(var) != "":
                    continue  # a default for unset only
                if var in unset or var not in env:
                    what, state = "not set", "unset"
                elif env[var] == "":
                    what, state = "empty", "empty"
                else:
                    continue
                review.add(
                    Finding(
                        "error",
                        f"{state}-variable",
                        rel.shown(path),
                        lineno,
                        f"${{{var}}} is {what}: Compose uses an empty string",
                        "Phase 3 step 3 and Phase 5 step 4 (build and up read these files)",
                        f"define {var} in the target's env (env.values, env.generated or "
                        "env.from_environment) or give it a default (${" + var + ":-value})",
                        (rel.name,),
                    )
                )
    for name in unset:  # a reference the scan above did not place (an included file...)
        if not any(f.message.startswith(f"${{{name}}}") for f in review.findings):
            review.add(
                Finding(
                    "error",
                    "unset-variable",
                    first,
                    None,
                    f"${{{name}}} is not set: Compose uses an empty string",
                    "Phase 3 step 3 and Phase 5 step 4 (build and up read these files)",
                    f"define {name} in the target's env",
                    (rel.name,),
                )
            )


def _env_values(env_file: Path) -> dict[str, str]:
    env = dict(os.environ)
    for line in env_file.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value
    return env


def _services(rel: _Release) -> dict[str, dict[str, Any]]:
    services = rel.config.get("services") or {}
    return {str(k): v for k, v in services.items() if isinstance(v, dict)}


def _files_and_images(rel: _Release, review: Review, client: Any) -> None:
    t = rel.target
    for name, svc in _services(rel).items():
        build = svc.get("build")
        if isinstance(build, dict):
            context = Path(str(build.get("context", ".")))
            where = _locate(rel, "services", name, "build")
            if not context.is_dir():
                review.add(
                    Finding(
                        "error",
                        "build-context",
                        *where,
                        f"service {name}: build context {rel.shown(context)} does not exist",
                        "Phase 3 step 3 (docker-compose build) and Phase 5 step 4",
                        "commit the build context or fix the path in build.context",
                        (rel.name,),
                    )
                )
            else:
                dockerfile = context / str(build.get("dockerfile") or "Dockerfile")
                if not dockerfile.is_file():
                    review.add(
                        Finding(
                            "error",
                            "dockerfile",
                            *where,
                            f"service {name}: {rel.shown(dockerfile)} does not exist",
                            "Phase 3 step 3 (docker-compose build) and Phase 5 step 4",
                            "commit the Dockerfile or fix build.dockerfile",
                            (rel.name,),
                        )
                    )
        for i, volume in enumerate(svc.get("volumes") or []):
            if volume.get("type") != "bind":
                continue
            source = Path(str(volume.get("source", "")))
            if not source.exists():
                review.add(
                    Finding(
                        "error",
                        "bind-mount",
                        *_item_line(rel, ("services", name, "volumes"), i),
                        f"service {name}: bind-mounted {rel.shown(source)} does not exist "
                        "(Compose would create an empty directory in its place)",
                        "Phase 3 step 3 and Phase 5 step 4 (up recreates the container)",
                        "commit the file, or fix the volume's source path",
                        (rel.name,),
                    )
                )
        image = svc.get("image")
        if client is None or not image or isinstance(build, dict):
            continue
        if not (_image_here(client, str(image)) or _image_here(client, t.images.get(image, ""))):
            review.add(
                Finding(
                    "error",
                    "image",
                    *_locate(rel, "services", name, "image"),
                    f"service {name}: image {image} is not here and has no build section",
                    "Phase 5 step 4 (up) and any recreate of the container",
                    f"pull or build {image} here, or map it to a local image in the target's "
                    "'images' field",
                    (rel.name,),
                )
            )


def _image_here(client: Any, name: str) -> Any:
    import docker.errors

    if not name:
        return None
    try:
        return client.images.get(name)
    except docker.errors.ImageNotFound:
        return None


# -- the services' own settings ------------------------------------------------------------


def _host_ip(port: Any) -> tuple[str, str]:
    """(host address, host port) of a ``docker compose config`` port entry."""
    if isinstance(port, dict):
        return str(port.get("host_ip") or ""), str(port.get("published") or "")
    return "", str(port)


def _settings(rel: _Release, review: Review, client: Any) -> None:
    for name, svc in _services(rel).items():
        role = rel.role_of(name)
        for i, port in enumerate(svc.get("ports") or []):
            host, published = _host_ip(port)
            if host in ("127.0.0.1", "::1", "localhost"):
                continue
            fixed_wsgi = role == "wsgi" and published != ""
            review.add(
                Finding(
                    "error" if fixed_wsgi else "warning",
                    "port-all-interfaces",
                    *_item_line(rel, ("services", name, "ports"), i),
                    f"service {name}: port {published or '(random)'}->"
                    f"{port.get('target') if isinstance(port, dict) else port} published on "
                    "every interface"
                    + (" with a fixed host port on the WSGI role" if fixed_wsgi else ""),
                    "Phase 2 step 3 (`up -d --scale` the WSGI role: one host port, one container)"
                    if fixed_wsgi
                    else "none of the plan's steps; a staging stack reachable from the network "
                    "(the drill's run replaces these ports by 127.0.0.1 ones)",
                    f'publish on loopback only ("127.0.0.1:{published}:...") or not at all',
                    (rel.name,),
                )
            )
        if svc.get("container_name"):
            scaled = role == "wsgi"
            review.add(
                Finding(
                    "error" if scaled else "warning",
                    "container-name",
                    *_locate(rel, "services", name, "container_name"),
                    f"service {name}: fixed container_name {svc['container_name']}",
                    "Phase 2 step 3 (`up -d --scale` needs one name per container)"
                    if scaled
                    else "two projects of the stack cannot coexist (the drill's run resets "
                    "it with !reset; a staging and a drill stack on one host cannot)",
                    "remove container_name (Compose names containers <project>-<service>-N)",
                    (rel.name,),
                )
            )
        policy = str(svc.get("restart") or "no")
        if role == "asgi" and policy in ("always", "unless-stopped"):
            always = policy == "always"
            review.add(
                Finding(
                    "warning" if always else "info",
                    "restart-policy",
                    *_locate(rel, "services", name, "restart"),
                    f"service {name} (ASGI role): restart: {policy}"
                    + (
                        " starts the ASGI container Phase 1 stopped again when the Docker "
                        "daemon or the host restarts"
                        if always
                        else " keeps Phase 1's stop across daemon restarts, but any "
                        "`docker-compose up -d` without a service list starts it again"
                    ),
                    "Phase 1 step 1 (docker-compose stop backend-asgi) and Phase 2 step 2",
                    "restart: unless-stopped, and scale the ASGI role to 0 (or remove it) "
                    "instead of only stopping it"
                    if always
                    else "after a rollback, scale the ASGI role to 0 or bring up named services",
                    (rel.name,),
                )
            )
        if role is not None and not _has_healthcheck(svc, client, rel.target):
            review.add(
                Finding(
                    "error",
                    "healthcheck",
                    *_locate(rel, "services", name),
                    f"service {name} ({role} role) has no health check (neither in the "
                    "compose file nor in its image)",
                    "Rollback Validation Checklist 'All containers are healthy'; the drill's "
                    "stack up waits for every role to be healthy",
                    "add a healthcheck: to the service (a curl of its health path, pg_isready, "
                    "redis-cli ping)",
                    (rel.name,),
                )
            )


def _has_healthcheck(svc: dict[str, Any], client: Any, target: Target) -> bool:
    check = svc.get("healthcheck")
    if isinstance(check, dict):
        return not check.get("disable") and check.get("test") not in (None, [], ["NONE"])
    image = str(svc.get("image") or "")
    found = _image_here(client, image) or _image_here(client, target.images.get(image, ""))
    if client is None or found is None:
        return False
    test = (found.attrs.get("Config", {}).get("Healthcheck") or {}).get("Test") or []
    return bool(test) and test != ["NONE"]


# -- nginx ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Directive:
    name: str
    args: tuple[str, ...]
    line: int


def _directives(text: str) -> Iterator[_Directive]:
    """nginx directives with their line (a tokenizer enough for ``limit_*``: quotes,
    comments, blocks)."""
    words: list[str] = []
    start = 0
    for m in re.finditer(
        r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|#[^\n]*|[{};]|[^\s{};"\'#]+', text
    ):
        tok = m.group(0)
        if tok.startswith("#"):
            continue
        if tok in ("{", "}", ";"):
            if words:
                yield _Directive(words[0], tuple(words[1:]), start)
            words = []
            continue
        if not words:
            start = text.count("\n", 0, m.start()) + 1
        words.append(tok.strip("\"'"))


def _rate(text: str) -> float | None:
    m = re.fullmatch(r"rate=(\d+(?:\.\d+)?)r/([sm])", text)
    if not m:
        return None
    return float(m.group(1)) / (60.0 if m.group(2) == "m" else 1.0)


def _conn_limit(d: _Directive) -> int:
    """``limit_conn ZONE N``'s N (a large number when it cannot be read)."""
    return int(d.args[1]) if len(d.args) >= 2 and d.args[1].isdigit() else 1 << 30


def _conf_files(mounts: dict[str, Path]) -> list[Path]:
    """The config files of the mounts (a mounted directory: its ``*.conf``)."""
    files = {p for p in mounts.values() if p.is_file()}
    files |= {f for p in mounts.values() if p.is_dir() for f in p.rglob("*.conf")}
    return sorted(files)


def _nginx_limits(
    rel: _Release, paths: list[Path], review: Review, load_rate: float, concurrency: int
) -> None:
    found: list[tuple[Path, _Directive]] = []
    for path in paths:
        try:
            found += [(path, d) for d in _directives(path.read_text())]
        except (OSError, UnicodeDecodeError):
            continue
    # zones first: a zone is declared in http{} (often nginx.conf), used in a server's file
    zones: dict[str, tuple[str, float | None]] = {}
    for _, d in found:
        zone = next((a.split("=", 1)[1].split(":")[0] for a in d.args if a.startswith("zone=")), "")
        if d.name == "limit_req_zone":
            rate = next((r for a in d.args if (r := _rate(a)) is not None), None)
            zones[zone] = (d.args[0] if d.args else "", rate)
    for path, d in found:
        zone = next((a.split("=", 1)[1].split(":")[0] for a in d.args if a.startswith("zone=")), "")
        if d.name == "limit_req" and zone in zones:
            key, rate = zones[zone]
            if rate is not None and rate < load_rate:
                burst = next((a[6:] for a in d.args if a.startswith("burst=")), "0")
                review.add(
                    Finding(
                        "error",
                        "rate-limit",
                        rel.shown(path),
                        d.line,
                        f"limit_req zone={zone} allows {rate:g} r/s per {key} (burst {burst}); "
                        f"the drill's load sends {load_rate:g} r/s from one address",
                        "the drill's baseline and every trigger: nginx answers 503 to the "
                        "drill's own load, which reads as the app failing",
                        f"raise the zone's rate above {load_rate:g}r/s on the drill's stack "
                        "(or exempt 127.0.0.1/the Docker gateway with a geo/map key), or run "
                        "the drill with a lower --drill-load-rate",
                        (rel.name,),
                    )
                )
        elif d.name == "limit_conn" and _conn_limit(d) < concurrency:
            review.add(
                Finding(
                    "warning",
                    "connection-limit",
                    rel.shown(path),
                    d.line,
                    f"limit_conn {d.args[0]} {d.args[1]}: the drill's load keeps up to "
                    f"{concurrency} requests in flight from one address when the stack "
                    "slows down",
                    "the latency triggers: a slowed stack's answers turn into 503s",
                    f"raise the limit to at least {concurrency} for the drill's stack",
                    (rel.name,),
                )
            )


def _nginx_mounts(rel: _Release) -> dict[str, Path]:
    """Container path -> workspace file of the release's nginx configuration."""
    t = rel.target
    svc = _services(rel).get(t.services.nginx) or {}
    mounts: dict[str, Path] = {}
    for volume in svc.get("volumes") or []:
        source = Path(str(volume.get("source", "")))
        if volume.get("type") == "bind" and source.exists():
            mounts[str(volume.get("target"))] = source
    release_conf = rel.ws.root / t.paths.nginx_release_conf
    if release_conf.is_file():
        mounts[t.paths.nginx_conf] = release_conf
    return mounts


def _host_file(mounts: dict[str, Path], in_container: str) -> Path | None:
    """The workspace file a container path of the nginx test is (a file or directory mount)."""
    for target, source in sorted(mounts.items(), key=lambda m: -len(m[0])):
        if in_container == target:
            return source
        if in_container.startswith(target.rstrip("/") + "/") and source.is_dir():
            return source / in_container[len(target.rstrip("/")) + 1 :]
    return None


def _nginx_image(rel: _Release, client: Any) -> str | None:
    """A local image to test the release's nginx config in: the service's image (or its
    local stand-in), else the base image its Dockerfile builds FROM."""
    t = rel.target
    svc = _services(rel).get(t.services.nginx) or {}
    names: list[str] = []
    if svc.get("image"):
        names.append(str(svc["image"]))
    build = svc.get("build")
    if isinstance(build, dict):
        dockerfile = Path(str(build.get("context", "."))) / str(
            build.get("dockerfile") or "Dockerfile"
        )
        try:
            froms = re.findall(r"(?im)^\s*FROM\s+(?:--\S+\s+)*(\S+)", dockerfile.read_text())
        except OSError:
            froms = []
        names += froms[-1:]
    for name in names:
        for candidate in (name, t.images.get(name, "")):
            if _image_here(client, candidate) is not None:
                return candidate
    return None


def _hostnames(rel: _Release) -> list[str]:
    names: set[str] = set()
    for name, svc in _services(rel).items():
        names.add(name)
        if svc.get("container_name"):
            names.add(str(svc["container_name"]))
        for net in (svc.get("networks") or {}).values():
            names.update((net or {}).get("aliases") or [])
    return sorted(names)


def _nginx_test(rel: _Release, review: Review, client: Any) -> str:
    t, ws = rel.target, rel.ws
    mounts = _nginx_mounts(rel)
    if t.paths.nginx_conf not in mounts:
        return f"{rel.name}: nginx -t not run ({t.paths.nginx_release_conf} is not in the release)"
    image = _nginx_image(rel, client)
    if image is None:
        review.add(
            Finding(
                "warning",
                "nginx-t",
                *_locate(rel, "services", t.services.nginx),
                f"nginx -t not run: no local image for service {t.services.nginx}",
                "Phase 2 step 1 / Phase 3 step 5 (nginx -t && nginx -s reload)",
                "build or map the nginx image (target field 'images'), then review again",
                (rel.name,),
            )
        )
        return f"{rel.name}: nginx -t not run (no local image)"
    labels = {LABEL: "1", RUN_LABEL: ws.run_id, PID_LABEL: str(os.getpid())}
    container = client.containers.create(
        image,
        ["-t"],
        entrypoint=["nginx"],
        network_mode="none",
        extra_hosts={name: "127.0.0.1" for name in _hostnames(rel)},
        volumes={str(src): {"bind": dst, "mode": "ro"} for dst, src in mounts.items()},
        labels=labels,
    )
    try:
        container.start()
        status = container.wait(timeout=60).get("StatusCode", 1)
        output = container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
    if status == 0:
        return f"{rel.name}: nginx -t passes in {image} ({len(mounts)} file(s))"
    said = [ln for ln in output.splitlines() if "[emerg]" in ln or "[crit]" in ln]
    said = said or [ln for ln in output.splitlines() if ln.strip()][-1:]
    for text in said:
        m = re.search(r" in (\S+):(\d+)", text)
        file, line = (_host_file(mounts, m.group(1)), int(m.group(2))) if m else (None, None)
        shown = rel.shown(file) if file else rel.shown(ws.root / t.paths.nginx_release_conf)
        review.add(
            Finding(
                "error",
                "nginx-t",
                shown,
                line if file else None,
                f"nginx -t fails: {text.split('] ', 1)[-1].strip()}",
                "Phase 2 step 1 and Phase 3 step 5 (the restored config must pass nginx -t)"
                if rel.name == t.releases.previous
                else "the deployment (its config is refused) and the rollback from it",
                "fix the config so that `nginx -t` passes in the nginx image",
                (rel.name,),
            )
        )
    return f"{rel.name}: nginx -t fails in {image}"


# -- the plan: files its rollback reads, files its backup writes -------------------------


@dataclass(frozen=True)
class _Access:
    path: str  # a normalized path: "nginx:/etc/nginx/x", "host:<workspace>/x", ...
    script: str
    line: int
    text: str
    source: Path


def _script_accesses(target: Target) -> tuple[list[_Access], list[_Access]]:
    """(reads, writes) of files by the plan's scripts, with their variables as the suite sets
    them (:func:`rollback_drill.plan_scripts.script_env`)."""
    nginx_dir = os.path.dirname(target.paths.nginx_conf)
    subst = {
        "$NGINX_DIR": f"nginx:{nginx_dir}",
        "$BACKUPS_DIR": f"host:<workspace>/{STATE_DIR}/plan-backups",
        "$COMMIT_FILE": f"host:<workspace>/{STATE_DIR}/pre-migration-commit.txt",
    }

    def norm(word: str, in_nginx: bool) -> str:
        for var, value in subst.items():
            if word.startswith(var):
                return value + word[len(var) :]
        return (
            (f"nginx:{word}" if in_nginx else f"host:{word}")
            if word.startswith("/")
            else f"host:<workspace>/{word}"
        )

    reads: list[_Access] = []
    writes: list[_Access] = []
    for script in (_BACKUP_SCRIPT, *_ROLLBACK_SCRIPTS):
        path = _SCRIPTS / script
        for lineno, text in enumerate(path.read_text().splitlines(), 1):
            if text.lstrip().startswith("#") or not text.strip():
                continue
            try:
                words = shlex.split(text, comments=True)
            except ValueError:
                continue
            in_nginx = bool(words) and words[0] == "$NGINX_EXEC"
            if in_nginx:
                words = words[1:]
            if len(words) == 3 and words[0] == "cp":
                reads.append(_Access(norm(words[1], in_nginx), script, lineno, text.strip(), path))
                if script == _BACKUP_SCRIPT:
                    writes.append(
                        _Access(norm(words[2], in_nginx), script, lineno, text.strip(), path)
                    )
            elif script == _BACKUP_SCRIPT and ">" in words and words.index(">") < len(words) - 1:
                out = words[words.index(">") + 1]
                writes.append(_Access(norm(out, False), script, lineno, text.strip(), path))
    return reads, writes


def _suite_writes(target: Target, mounted: bool) -> list[str]:
    """The files :func:`rollback_drill.backup.take_backups` writes, normalized as above."""
    from rollback_drill.backup import BACKUP_SUFFIX, COMMIT_FILE, DUMP_PREFIX, DUMP_SUFFIX

    backup_name = os.path.basename(target.paths.nginx_conf_backup)
    nginx = (
        f"host:<workspace>/{STATE_DIR}/nginx/{backup_name}"
        if mounted
        else f"nginx:{target.paths.nginx_conf_backup}"
    )
    files = [
        f"host:<workspace>/{n}{BACKUP_SUFFIX}" for n in [*target.compose_files, target.env_file]
    ]
    dump = f"postgres:{target.paths.backups_dir.rstrip('/')}/{DUMP_PREFIX}*{DUMP_SUFFIX}"
    return [nginx, *files, f"host:<workspace>/{STATE_DIR}/{COMMIT_FILE}", dump]


_STEPS = {
    "rollback-config.sh": "Script 1 (rollback-config.sh): Restore Nginx -- the plan's quick "
    "config rollback (Phase 2 step 1 as a script)",
    "rollback-full.sh": "Script 2 (rollback-full.sh): Restore Nginx",
    "phase5": "Phase 5 step 2 (pg_restore of the pre-migration dump)",
    _BACKUP_SCRIPT: "Configuration Backup Procedure (backup-config.sh), before deployment",
}


_SCRIPT_STEPS = {
    "rollback-config.sh": "Script 1 (rollback-config.sh), the plan's quick config rollback",
    "rollback-full.sh": "Script 2 (rollback-full.sh), the plan's full code rollback",
    _BACKUP_SCRIPT: "Configuration Backup Procedure (backup-config.sh), before deployment",
}


def _plan_dump_read(target: Target) -> _Access:
    """The plan's Phase 5 restores ``/backups/pre-migration.dump`` (the suite keeps the name
    in :data:`rollback_drill.rollback.phase5.PLAN_DUMP`, where its probe reads it)."""
    from rollback_drill.rollback import phase5

    source = Path(phase5.__file__)
    line = next(
        (
            i
            for i, ln in enumerate(source.read_text().splitlines(), 1)
            if ln.startswith("PLAN_DUMP")
        ),
        0,
    )
    dump = f"{target.paths.backups_dir.rstrip('/')}/{phase5.PLAN_DUMP}"
    return _Access(f"postgres:{dump}", "phase5", line, f"pg_restore ... {dump}", source)


def _nginx_mounted(rel: _Release) -> bool:
    t = rel.target
    volumes = (_services(rel).get(t.services.nginx) or {}).get("volumes") or []
    return any(v.get("type") == "bind" and v.get("target") == t.paths.nginx_conf for v in volumes)


def _backups(rel: _Release, review: Review) -> list[str]:
    """Each file the rollback scripts and phases read is one the backup procedure writes, or
    a live file of the stack; returns the paths the rollback reads."""
    import fnmatch

    t = rel.target
    mounted = _nginx_mounted(rel)
    reads, plan_writes = _script_accesses(t)
    reads.append(_plan_dump_read(t))
    written = list(dict.fromkeys([*_suite_writes(t, mounted), *(w.path for w in plan_writes)]))
    live = {f"nginx:{t.paths.nginx_conf}", f"host:<workspace>/{t.env_file}"}
    live |= {f"host:<workspace>/{n}" for n in t.compose_files}
    for read in reads:
        if read.path in live or any(fnmatch.fnmatchcase(read.path, w) for w in written):
            continue
        where, _, path = read.path.partition(":")
        path = path.replace("<workspace>/", "")
        near = [w for w in written if w.rsplit("/", 1)[0] == read.path.rsplit("/", 1)[0]]
        near = near or [w for w in written if w.partition(":")[0] == where]
        names = [w.partition(":")[2].replace("<workspace>/", "") for w in near]
        if read.script == _BACKUP_SCRIPT:
            message = (
                f"copies {path} ({read.text}), which is not a file of this stack (nginx config "
                f"{t.paths.nginx_conf}; compose files {', '.join(t.compose_files)}; env file "
                f"{t.env_file})"
            )
            fix = (
                "back up the stack's own files (the suite's backup does: rollback_drill/backup.py)"
            )
        else:
            message = (
                f"reads {path} ({read.text}), which the backup procedure never writes; it "
                f"writes {', '.join(names) or f'nothing in {where}'}"
            )
            fix = (
                f"restore {names[0]}, the file the backup procedure writes (or make the backup "
                f"also write {path})"
                if names
                else f"make the backup procedure write {path}"
            )
        review.add(
            Finding(
                "error",
                "backup-name",
                _shown(read.source),
                read.line,
                message,
                _STEPS[read.script],
                fix,
            )
        )
    return [r.path for r in reads if r.script != _BACKUP_SCRIPT]


_COMPOSE_VERBS = frozenset(
    {"stop", "start", "restart", "build", "up", "logs", "exec", "rm", "kill"}
)


def _script_services(names: set[str], review: Review) -> None:
    """The services the plan's scripts name in their ``docker-compose`` calls must be services
    of the stack (the plan's are ``backend-wsgi``, ``backend-asgi``, ``postgres``)."""
    for script in (*_ROLLBACK_SCRIPTS, _BACKUP_SCRIPT):
        path = _SCRIPTS / script
        for lineno, text in enumerate(path.read_text().splitlines(), 1):
            try:
                words = shlex.split(text, comments=True)
            except ValueError:
                continue
            if len(words) < 3 or words[0] != "$DOCKER_COMPOSE" or words[1] not in _COMPOSE_VERBS:
                continue
            verb, named = words[1], []
            for word in words[2:]:
                if word.startswith("-") or word.startswith("$"):
                    continue
                named.append(word.split("=", 1)[0])
                if verb == "exec":
                    break  # then the command
            for service in named:
                if service in names:
                    continue
                review.add(
                    Finding(
                        "error",
                        "script-service",
                        _shown(path),
                        lineno,
                        f"`{text.strip()}` names service {service}, which this stack does not "
                        f"have (its services: {', '.join(sorted(names))})",
                        _SCRIPT_STEPS[script],
                        f"name the stack's own service in {script} (the target's services map "
                        "says which plays each role)",
                    )
                )


def _script_health_paths() -> list[tuple[str, int, str]]:
    """(script, line, path) of each health request the plan's scripts send."""
    found: list[tuple[str, int, str]] = []
    for script in (*_ROLLBACK_SCRIPTS, "lib/checks.sh"):
        for lineno, text in enumerate((_SCRIPTS / script).read_text().splitlines(), 1):
            for m in re.finditer(r"\$\{?BASE_URL\}?(/[^\s\"');]*health[^\s\"');]*)", text):
                found.append((script, lineno, m.group(1)))
    return found


def _health_paths(target: Target, review: Review) -> None:
    for script, line, path in _script_health_paths():
        if path != target.paths.health:
            review.add(
                Finding(
                    "warning",
                    "health-path",
                    _shown(_SCRIPTS / script),
                    line,
                    f"the plan's script curls {path}; the target's health path is "
                    f"{target.paths.health}",
                    "Phase 2 step 4 / the scripts' health check (fails unless the app also "
                    f"serves {path})",
                    f"serve {path} too, or change the script to curl {target.paths.health}",
                )
            )


# -- the previous release, started ---------------------------------------------------------


def _in_target(target_file: Path | None, name: str, *keys: str) -> tuple[str, int | None]:
    """File and line of ``keys`` in the target file (its name when the file is not known)."""
    if target_file is None:
        return f"target {name}", None
    node = _yaml_node(target_file)
    line = None
    for key in keys:
        found = _key(node, key)
        if found is None:
            break
        node, line = found[1], found[0].start_mark.line + 1
    return _shown(target_file), line


def _live(rel: _Release, review: Review, reads: list[str], target_file: Path | None) -> None:
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
                    _shown(t.project_dir / t.compose_files[0]),
                    None,
                    f"the previous release does not come up: {exc}",
                    "Phase 3 and Phase 5 (they bring the previous release up)",
                    "rollback-drill up --target ... shows the failing step",
                    (rel.name,),
                )
            )
            return
        paths: dict[str, list[tuple[str, int | None]]] = {
            t.paths.health: [_in_target(target_file, t.name, "paths", "health")]
        }
        for script, number, path in _script_health_paths():
            paths.setdefault(path, []).append((_shown(_SCRIPTS / script), number))
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
                    *_in_target(
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
                    _shown(Path(__file__).with_name("backup.py")),
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


# -- the review ----------------------------------------------------------------------------


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
    removes every container it made (they carry the run's labels)."""
    started = time.monotonic()
    rel_names = tuple(releases or (target.releases.previous, target.releases.next))
    out = Review(target.name, rel_names)
    client = _docker()
    try:
        ws = create_workspace(target)
    except StackError as exc:  # its checkout's hook writes the override: compose config failed
        out.add(
            Finding(
                "error",
                "compose-config",
                _shown(target.project_dir / target.compose_files[0]),
                None,
                str(exc),
                "every phase (each runs docker-compose on these files)",
                "make `docker compose config` pass with the target's env file",
                (target.releases.previous,),
            )
        )
        if client is not None:
            client.close()
        out.duration_s = time.monotonic() - started
        return out
    out.run_id = ws.run_id
    try:
        checked: dict[str, _Release] = {}
        for name in rel_names:
            _checkout(ws, name)
            rel = checked[name] = _Release(name, target, ws)
            _compose_config(rel, out)
            if not rel.config:
                continue
            _files_and_images(rel, out, client)
            _settings(rel, out, client)
            _nginx_limits(rel, _conf_files(_nginx_mounts(rel)), out, load_rate, concurrency)
            if nginx_test and client is not None:
                out.checked.append(_nginx_test(rel, out, client))
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
            reads = _backups(previous, out)
            _health_paths(target, out)
            services = {n for r in checked.values() for n in _services(r)}
            if services:  # else no compose config resolved: that is the finding
                _script_services(services, out)
            out.checked.append("files the rollback scripts and phases read vs the backup's")
        if start and previous is not None and previous.config:
            _checkout(ws, previous.name)
            mounted = _nginx_mounted(previous)
            suite = _suite_writes(target, mounted)
            # the suite's own phases read its nginx backup and commit file; the plan's, theirs
            _live(
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
    out.duration_s = time.monotonic() - started
    return out


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
